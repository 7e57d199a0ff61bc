"""`lapse promote`: make the candidate model champion if it passes the gates against the current champion."""

from __future__ import annotations

import argparse
import sys

EXIT_OK = 0
EXIT_REFUSED = 1
EXIT_NO_CANDIDATE = 2


def register(subparsers) -> None:
    """Add the `promote` sub-command."""
    from config import PromotionGates, TrainingConfig

    gates, training = PromotionGates(), TrainingConfig()
    parser = subparsers.add_parser(
        "promote",
        help="move the champion alias to the candidate if it passes the promotion gates",
        description=f"Re-score the '{training.candidate_alias}' and '{training.champion_alias}' versions of "
        f"'{training.registered_model}' on the candidate run's temporal test set and move "
        f"'{training.champion_alias}' only if: AUC is at least {gates.min_auc} and not more than "
        f"{gates.max_auc_drop} below the champion's, ECE is at most {gates.max_ece}, and no group of "
        f"{', '.join(gates.fairness_attributes)} is served worse (docs/training.md). Gate results are logged as an MLflow run "
        "and as tags on the candidate version. Exit 0 when promoted (or already champion), 1 when refused, "
        "2 when there is no candidate.",
    )
    parser.add_argument("--override-reason", default=None, metavar="TEXT",
                        help="promote even if gates fail; the reason is logged with the decision")
    parser.set_defaults(func=run)


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


def run(args: argparse.Namespace) -> int:
    """Gate and maybe promote; exit 0 when the candidate is champion afterwards, 1 when refused."""
    from training.promotion import promote

    try:
        decision = promote(override_reason=args.override_reason)
    except LookupError as exc:
        print(f"lapse promote: {exc}", file=sys.stderr)
        return EXIT_NO_CANDIDATE
    print("\n".join(format_decision(decision)))
    return EXIT_OK if decision.promoted or not decision.gates else EXIT_REFUSED
