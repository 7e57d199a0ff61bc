"""`lapse validate`: check a data folder against the data contract and summarise it."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_BAD_DATA = 2


def register(subparsers) -> None:
    """Add the `validate` sub-command."""
    parser = subparsers.add_parser(
        "validate",
        help="check a data folder against the data contract",
        description="Check patients and events (Parquet or CSV) against the lapse data contract. "
        "Exit 0 with a summary when the data is usable, 2 with every problem found when not.",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="folder holding patients.parquet|csv and events.parquet|csv (and optionally program.json)")
    parser.add_argument("--now", default=None, metavar="ISO",
                        help="the current time for the 'no events in the future' rule, ISO 8601 with a time zone "
                        "(default: the clock, UTC)")
    parser.set_defaults(func=run)


def summarise(patients, events, extras: dict[str, list[str]]) -> list[str]:
    """Counts for a valid cohort: patients, events per type, date span, extra columns carried."""
    import pandas as pd

    from features.contract import EventType

    day = pd.Timedelta(days=1)
    lines = [f"patients: {len(patients):,}", f"events:   {len(events):,}"]
    counts = events["event_type"].value_counts()
    for t in EventType:
        lines.append(f"  {t.value:<20} {int(counts.get(t.value, 0)):>12,}")
    if len(events):
        first, last = events["timestamp"].min(), events["timestamp"].max()
        days = (last - first) / day
        lines.append(f"events span {days:.1f} days ({first:%Y-%m-%d} to {last:%Y-%m-%d}, UTC)")
    enrolled = patients["enrolled_at"]
    lines.append(f"enrolment spans {(enrolled.max() - enrolled.min()) / day:.1f} days "
                 f"({enrolled.min():%Y-%m-%d} to {enrolled.max():%Y-%m-%d}, UTC)")
    for table, names in extras.items():
        if names:
            lines.append(f"extra columns carried in {table}: {', '.join(names)}")
    return lines


def run(args: argparse.Namespace) -> int:
    """Validate the folder; print the summary (exit 0) or the report of every problem (exit 2)."""
    from features.contract import EVENT_COLUMNS, PATIENT_COLUMNS
    from features.validate import (
        PROGRAM_FILE,
        ContractError,
        Problem,
        as_utc,
        check_program_file,
        format_report,
        load_cohort,
    )

    try:
        now = as_utc(args.now)
    except ValueError:
        print("lapse validate: --now must be an ISO 8601 time with a time zone, e.g. 2025-06-01T00:00:00Z",
              file=sys.stderr)
        return EXIT_BAD_DATA
    data_dir: Path = args.data
    problems: list[Problem] = []
    cohort = None
    try:
        cohort = load_cohort(data_dir, now=now)
    except ContractError as exc:
        problems += exc.problems
    program = data_dir / PROGRAM_FILE
    if program.is_file():
        problems += check_program_file(program)
    if problems:
        print(format_report(problems), file=sys.stderr)
        return EXIT_BAD_DATA
    extras = {
        "patients": [c for c in cohort.patients.columns if c not in {c.name for c in PATIENT_COLUMNS}],
        "events": [c for c in cohort.events.columns if c not in {c.name for c in EVENT_COLUMNS}],
    }
    print(f"{data_dir}: the data meets the lapse data contract.")
    if program.is_file():
        print(f"program settings read from {program}")
    print("\n".join(summarise(cohort.patients, cohort.events, extras)))
    return EXIT_OK
