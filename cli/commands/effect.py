"""Estimate whether offering support changed re-engagement (the causal excursion effect, docs/outreach.md) from
the service's decision log and outcomes, or from any micro-randomized trial's decisions table (map its column
names with --columns). Writes effect.json and effect.html into --out and logs a run to lapse's MLflow store
(experiment lapse-effect). Exit 0 when written, 2 when the decisions cannot be used (nothing is then written)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from config import LapseError

NAME = "effect"
COLUMN_KEYS = ("unit", "time", "action", "probability", "outcome", "tier")


class EffectRefused(LapseError):
    """The arguments do not describe one usable decisions source; nothing was written."""


def parse_names(text: str | None) -> tuple[str, ...]:
    """Comma-separated column names (blanks dropped)."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def parse_columns(text: str | None) -> dict[str, str]:
    """`unit=user_id,action=sent,...` as a mapping onto the decisions table's columns (`tier=` leaves tier out)."""
    mapping: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        if not sep or key not in COLUMN_KEYS:
            raise typer.BadParameter(f"'{part.strip()}': each entry is KEY=COLUMN with KEY one of "
                                     f"{', '.join(COLUMN_KEYS)}", param_hint="--columns")
        if key in mapping:
            raise typer.BadParameter(f"{key} is mapped twice", param_hint="--columns")
        mapping[key] = value.strip()
    return mapping


def command(
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="folder to write effect.json and effect.html into")],
    decisions_db: Annotated[Optional[str], typer.Option(
        "--decisions-db", metavar="URL", help="SQLAlchemy URL of the service's decision log (its outcomes are "
        "read from the same database), e.g. sqlite:///.lapse/decisions.db")] = None,
    table: Annotated[Optional[Path], typer.Option(
        "--table", metavar="FILE", help="a decisions table (.csv or .parquet), one row per decision point, "
        "e.g. another program's MRT log")] = None,
    columns: Annotated[Optional[str], typer.Option(
        "--columns", metavar="KEY=COL,...", help="--table only: its column names, e.g. "
        "unit=user_id,time=ts,action=sent,probability=p,outcome=used_7d,tier= (keys: "
        f"{', '.join(COLUMN_KEYS)}; an empty tier leaves tiers out)")] = None,
    window_days: Annotated[int, typer.Option(
        "--window-days", min=1, help="--decisions-db only: the outcome is re-engagement within this many days "
        "after the decision")] = 7,
    moderators: Annotated[Optional[str], typer.Option(
        "--moderators", metavar="COL,...", help="numeric columns the effect is also fitted along (a straight "
        "line in each); with --decisions-db: risk, or features from --features")] = None,
    features: Annotated[Optional[Path], typer.Option(
        "--features", metavar="FILE", help="--decisions-db only: a features table (.parquet or .csv with "
        "patient_id, as_of and features, e.g. what lapse features wrote) joined to each decision by patient and "
        "as_of, so its features can be --moderators")] = None,
    tracking_uri: Annotated[Optional[str], typer.Option(
        "--tracking-uri", metavar="URI", help="MLflow tracking store (default: lapse's own, MLFLOW_TRACKING_URI "
        "or sqlite under .lapse)")] = None,
) -> int:
    """Run the effect analysis; print the two files written and the overall effect (exit 0)."""
    from pydantic import ValidationError

    from outreach.effect_job import run_effect
    from outreach.settings import EffectColumns, EffectSettings
    from training.tracking import tracking_uri as default_tracking_uri

    if (decisions_db is None) == (table is None):
        raise EffectRefused("give exactly one of --decisions-db URL and --table FILE")
    if features is not None and decisions_db is None:
        raise EffectRefused("--features joins feature values to the decision log: use it with --decisions-db")
    if columns and table is None:
        raise EffectRefused("--columns maps the names of a --table file; the decision log's are fixed")
    try:
        settings = EffectSettings(
            decisions=table, decisions_db=decisions_db or "", out=out, window_days=window_days, features=features,
            columns=EffectColumns(**parse_columns(columns)), moderators=parse_names(moderators),
            tracking_uri=tracking_uri or default_tracking_uri())
    except ValidationError as error:
        first = error.errors()[0]
        raise EffectRefused(f"{'.'.join(map(str, first['loc'])) or 'settings'}: {first['msg']}") from None
    result = run_effect(settings)
    overall = result.overall
    print(out / "effect.json")
    print(out / "effect.html")
    print(f"overall effect {100 * overall.estimate:+.1f} points ({round(100 * result.confidence)}% interval "
          f"{100 * overall.lower:+.1f} to {100 * overall.upper:+.1f}), {result.n_available} randomized decisions "
          f"about {result.n_units} patients")
    return 0
