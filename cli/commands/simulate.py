"""`lapse simulate`: write a realistic synthetic cohort (patients, events, truth, meta.json)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.arguments import positive_int
from simulation.settings import SimulationConfig

_DEFAULTS = SimulationConfig()


def register(subparsers) -> None:
    """Add the `simulate` sub-command."""
    parser = subparsers.add_parser(
        "simulate",
        help="simulate a realistic cohort of patients and their program events",
        description="Simulate patients, their events and the true latent state, and write them as a data folder "
        "(patients.parquet, events.parquet, truth.parquet, meta.json). The same arguments give the same files.",
    )
    parser.add_argument("--patients", type=positive_int, default=_DEFAULTS.n_patients, metavar="N",
                        help=f"number of patients (default {_DEFAULTS.n_patients:,})")
    parser.add_argument("--days", type=positive_int, default=_DEFAULTS.days, metavar="D",
                        help=f"days of observation from the study start to data_end (default {_DEFAULTS.days})")
    parser.add_argument("--seed", type=int, default=_DEFAULTS.seed, metavar="S",
                        help=f"random seed (default {_DEFAULTS.seed})")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="data folder to write")
    parser.add_argument("--force", action="store_true", help="replace DIR if it already holds files")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Simulate and write the cohort; returns the exit code."""
    from dataclasses import replace

    from simulation import simulate
    from simulation.output import OutputExists, write_cohort

    config = replace(_DEFAULTS, n_patients=args.patients, days=args.days, seed=args.seed)
    if args.out.is_dir() and any(args.out.iterdir()) and not args.force:
        print(f"lapse simulate: {args.out}: folder is not empty (use --force to replace it)", file=sys.stderr)
        return 1
    cohort = simulate(config)
    try:
        out = write_cohort(cohort, config, args.out, force=args.force)
    except OutputExists as exc:
        print(f"lapse simulate: {exc}", file=sys.stderr)
        return 1
    events = cohort.events
    users = events["patient_id"][events["event_type"].isin(_own_types())].nunique()
    starters = int(cohort.truth["starts"].sum())
    exits = int((events["event_type"] == "discontinued").sum())
    print(
        f"Simulated {len(cohort.patients):,} patients over {config.days} days (seed {config.seed}, data_end "
        f"{cohort.data_end.isoformat()}): {len(events):,} events, {users:,} patients with any own engagement "
        f"({starters:,} drawn as starters), {exits:,} explicit discontinuations. Wrote {out}."
    )
    return 0


def _own_types() -> list[str]:
    from features.contract import OWN_ENGAGEMENT

    return [str(t) for t in OWN_ENGAGEMENT]
