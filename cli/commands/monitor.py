"""Compare recent inputs (snapshots at the model's as-of days in the last --window-days) with what the served
model was trained on (PSI per feature, 0.1 watch, 0.25 alarm) from a data folder, and, from a decision log,
how the logged scores turned out (realized AUC and calibration, labels from the data folder's events; outcomes
by kind). Exit 0, or 1 with --fail-on-alarm when a feature is at alarm level, 2 when the data, the log or the
model is not usable."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import ConfigFile
from config import RegistryConfig, load_settings
from monitoring.psi import WINDOW_DAYS

NAME = "monitor"
_REGISTRY = RegistryConfig()


def _db_url(text: str) -> str:
    """A SQLAlchemy URL as given, or a SQLite file path turned into one (which must exist)."""
    if "://" in text:
        return text
    path = Path(text)
    if not path.is_file():
        raise ValueError(f"--decisions: no such decision log file: {path}")
    return f"sqlite:///{path}"


def _print(report) -> None:
    print(f"model {report.model_name} version {report.model_version}")
    if report.drift:
        print(f"drift of {report.snapshots:,} recent snapshots (the model's as-of days, up to {report.as_of}) against "
              f"the training reference (PSI: below 0.1 ok, 0.1 watch, 0.25 alarm): {report.worst}")
        print(f"  {'feature':<34} {'PSI':>7}  {'level':<6} {'missing (train -> now)':>22}")
        for d in report.drift:
            print(f"  {d.feature:<34} {d.psi:>7.3f}  {d.level:<6} "
                  f"{d.reference_missing:>10.1%} -> {d.recent_missing:>6.1%}")
    done = report.realized
    if done is not None:
        print(f"decision log: {done.decisions:,} decisions, {done.labelled:,} with their horizon passed in the data"
              + (f" ({done.not_eligible:,} about patients the model was not fit to score left out)"
                 if done.not_eligible else ""))
        if done.labelled:
            auc = f"{done.auc:.3f}" if done.auc is not None else "n/a (one class only)"
            print(f"  realized AUC {auc}; mean risk {done.mean_risk:.1%} vs observed dropout {done.observed_rate:.1%};"
                  f" expected calibration error {done.ece:.3f}")
        if done.outcomes:
            print("  outcomes: " + ", ".join(f"{kind} {count:,}" for kind, count in sorted(done.outcomes.items())))


def command(
    data: Annotated[Optional[Path], typer.Option(
        "--data", metavar="DIR", help="data folder (patients + events): drift of the recent snapshots, and the "
        "labels for realized performance")] = None,
    decisions: Annotated[Optional[str], typer.Option(
        "--decisions", metavar="DB", help="decision log: a SQLite file or a SQLAlchemy URL")] = None,
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", metavar="ISO", help="end of the recent window (default: the data's data_end)")] = None,
    window_days: Annotated[int, typer.Option(
        "--window-days", metavar="DAYS", min=1, help="recent window: snapshots in these days before --as-of")] = WINDOW_DAYS,
    alias: Annotated[Optional[str], typer.Option(
        "--alias", help=f"registry alias of the model (default: {_REGISTRY.champion_alias})")] = None,
    fail_on_alarm: Annotated[bool, typer.Option(
        "--fail-on-alarm", help="exit 1 when a feature's PSI is at alarm level (for schedulers)")] = False,
    config: ConfigFile = None,
) -> int:
    """Print the drift table and realized performance."""
    from engines.scoring import load_served_model
    from features.labels import as_utc_instant
    from monitoring.job import run_monitor
    from training.tracking import tracking_uri

    url = _db_url(decisions) if decisions is not None else None
    if data is not None and not data.is_dir():
        raise ValueError(f"--data: no such folder: {data}")
    registry = load_settings(data, config).registry
    uri = tracking_uri()
    model = load_served_model(uri, alias or registry.champion_alias, registry.registered_model)
    report = run_monitor(model, uri, data, url, as_utc_instant(as_of) if as_of else None, window_days)
    _print(report)
    return 1 if fail_on_alarm and report.worst == "alarm" else 0
