"""`lapse features`: build the labelled training snapshot table of a data folder and write it as Parquet."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cli.arguments import as_of_days, positive_int

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register(subparsers) -> None:
    """Add the `features` sub-command."""
    from config import FeatureConfig, LabelConfig

    features, labels = FeatureConfig(), LabelConfig()
    parser = subparsers.add_parser(
        "features",
        help="build point-in-time features and dropout labels for training",
        description="Validate a data folder, take snapshots at the given days after each patient's enrolment, "
        "and write the features and dropout label of every eligible, uncensored snapshot to a Parquet file. "
        "Exit 2 with the contract's report when the data is not usable.",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="folder holding patients.parquet|csv and events.parquet|csv (meta.json gives data_end)")
    parser.add_argument("--as-of-days", type=as_of_days, default=features.as_of_days, metavar="D,D,...",
                        help=f"snapshot days after enrolment (default: {','.join(map(str, features.as_of_days))})")
    parser.add_argument("--horizon", type=positive_int, default=labels.horizon_days, metavar="DAYS",
                        help=f"dropout horizon in days after the as-of time (default: {labels.horizon_days})")
    parser.add_argument("--definition", choices=("inactivity", "discontinuation", "either"),
                        default=labels.definition,
                        help=f"what counts as dropout in the horizon (default: {labels.definition})")
    parser.add_argument("--calendar", action="store_true",
                        help=f"also take snapshots every {features.calendar_every_days} calendar days")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="Parquet file to write (.parquet)")
    from engines.options import add_engine_options

    add_engine_options(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the training table and write it atomically; print counts only (exit 0), or the problem (exit 2)."""
    from dataclasses import replace

    from config import FeatureConfig, LabelConfig
    from features.io import read_data_end, write_table
    from features.snapshots import training_table
    from features.validate import ContractError, load_cohort

    out: Path = args.out
    if out.suffix != ".parquet":
        print(f"lapse features: --out must name a .parquet file (got {out.name})", file=sys.stderr)
        return EXIT_BAD_INPUT
    if getattr(args, "engine", "local") == "dask":
        from engines.commands import run_features

        return run_features(args)
    try:
        cohort = load_cohort(args.data)
        data_end = read_data_end(args.data, cohort.events)
    except ContractError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as exc:
        print(f"lapse features: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    feature_config = replace(FeatureConfig(), as_of_days=args.as_of_days)
    label_config = replace(LabelConfig(), horizon_days=args.horizon, definition=args.definition)
    table = training_table(cohort.patients, cohort.events, data_end, feature_config=feature_config,
                           label_config=label_config, calendar=args.calendar)
    write_table(table, out.parent, out.stem)
    n_drop = int(table["dropout"].sum())
    print(f"wrote {out}: {len(table):,} snapshots of {table['patient_id'].nunique():,} patients "
          f"(eligible and uncensored), {n_drop:,} dropouts, {len(table) - n_drop:,} retained")
    if not args.calendar:  # calendar snapshots fall on every day since enrolment: too many lines
        for day, group in table.groupby("as_of_day", sort=True):
            print(f"  day {int(day):>3}: {len(group):>9,} snapshots, {int(group['dropout'].sum()):>9,} dropouts")
    return EXIT_OK
