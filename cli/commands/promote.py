"""Re-score the candidate and champion versions of the registered model on the candidate run's temporal test
set and move the champion alias only if the promotion gates pass ([promotion] in lapse.toml: AUC floor and
largest drop against the champion, ECE, and no group of patients served worse: docs/training.md). Gate results are logged as an MLflow run and as
tags on the candidate version. Exit 0 when promoted (or already champion), 1 when refused, 2 when there is no
candidate."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli.options import ConfigFile
from config import LapseError, load_settings

NAME = "promote"
EXIT_OK = 0
EXIT_REFUSED = 1


class NoCandidate(LapseError):
    """The registry has no candidate version to promote."""


def format_decision(decision) -> list[str]:
    """Readable lines: the gates with values and limits, and what happened."""
    if decision.note and not decision.gates:
        return [f"version {decision.candidate_version}: {decision.note}"]
    champion = f"champion version {decision.champion_version}" if decision.champion_version else "no champion yet"
    lines = [f"candidate version {decision.candidate_version} against {champion}"]
    for gate in decision.gates:
        lines.append(f"  {'pass' if gate.passed else 'FAIL'}  {gate.name:<18} {gate.detail}")
    if decision.note:
        lines.append(f"  note: {decision.note}")
    if decision.promoted and decision.passed:
        lines.append(f"promoted: version {decision.candidate_version} is champion")
    elif decision.promoted:
        lines.append(f"promoted by override ({decision.override_reason}): version {decision.candidate_version} "
                     "is champion")
    else:
        lines.append("refused: champion unchanged")
    lines.append(f"promotion run {decision.run_id}")
    return lines


def command(
    override_reason: Annotated[Optional[str], typer.Option(
        "--override-reason", metavar="TEXT",
        help="promote even if gates fail; the reason is logged with the decision")] = None,
    config: ConfigFile = None,
) -> int:
    """Gate and maybe promote; exit 0 when the candidate is champion afterwards, 1 when refused."""
    from training.promotion import promote
    from training.tracking import connect, refuse_mlflow_default_store, release_foreign_project_run, tracking_uri

    settings = load_settings(None, config)
    # Under `mlflow run` without --experiment-name, log the decision in lapse's experiment, not "Default".
    refuse_mlflow_default_store(tracking_uri())
    client = connect()
    found = client.get_experiment_by_name(settings.training.experiment)
    release_foreign_project_run(client, found.experiment_id if found else None)
    try:
        decision = promote(config=settings.training, gates=settings.promotion, override_reason=override_reason or None)
    except LookupError as exc:
        raise NoCandidate(str(exc)) from None
    print("\n".join(format_decision(decision)))
    return EXIT_OK if decision.promoted or not decision.gates else EXIT_REFUSED
