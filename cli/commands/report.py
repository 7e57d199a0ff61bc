"""`lapse report`: the engagement report (recommended use, uptake, level and duration of use, completion)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_BAD_DATA = 2


def register(subparsers) -> None:
    """Add the `report` sub-command."""
    from config import ReportConfig

    defaults = ReportConfig()
    parser = subparsers.add_parser(
        "report",
        help="write the engagement report (HTML + JSON) for a data folder",
        description="Write report.html (self-contained) and report.json (every number) with the engagement "
        "reporting elements, overall and by subgroup, small groups suppressed. Exit 0 when written, 2 when the "
        "data cannot be used (an existing report is then left as it was).",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="folder holding patients and events (and optionally meta.json, program.json)")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the report into")
    parser.add_argument("--min-cell", type=int, default=defaults.min_cell, metavar="N",
                        help="smallest group or count shown; smaller ones are suppressed "
                        f"(default {defaults.min_cell})")
    parser.add_argument("--weeks", type=int, default=defaults.weeks, metavar="K",
                        help=f"weeks of duration of use to report (default {defaults.weeks})")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build and write the report; print the paths (exit 0) or why the data cannot be used (exit 2)."""
    from dataclasses import replace

    from config import LabelConfig, ReportConfig
    from features.validate import ContractError
    from reporting.files import ReportInputError, make_report

    if args.min_cell < 1 or args.weeks < 1:
        print("lapse report: --min-cell and --weeks must be at least 1", file=sys.stderr)
        return EXIT_BAD_DATA
    config = replace(ReportConfig(), min_cell=args.min_cell, weeks=args.weeks)
    try:
        paths = make_report(args.data, args.out, LabelConfig(), config)
    except (ContractError, ReportInputError) as exc:
        print(f"lapse report: no report written.\n{exc}", file=sys.stderr)
        return EXIT_BAD_DATA
    for path in paths.values():
        print(path)
    return EXIT_OK
