"""`lapse score-batch`: score every active patient of a data folder with a registered model, to Parquet."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register(subparsers) -> None:
    """Add the `score-batch` sub-command."""
    parser = subparsers.add_parser(
        "score-batch",
        help="score every active patient with a registered model (risk, tier, top reasons) to Parquet",
        description="Score every patient who is active at the as-of time (enrolled, engaged within the label "
        "definition's window and not discontinued) with the registered model behind an alias, using the "
        "service's scoring functions, and write patient_id, as_of, risk, tier, trigger, priority, model and "
        "reasons (JSON) to a Parquet file (a Parquet folder with --engine dask), atomically. "
        "Exit 2 when the data or the model is not usable.",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="folder holding patients and events (meta.json gives data_end)")
    parser.add_argument("--out", type=Path, required=True, metavar="FILE", help="Parquet file to write (.parquet)")
    parser.add_argument("--alias", default="champion", help="registry alias of the model (default: champion)")
    parser.add_argument("--as-of", default=None, metavar="ISO",
                        help="prediction time, ISO 8601 (default: the data's data_end)")
    from engines.options import add_engine_options

    add_engine_options(parser)
    parser.set_defaults(func=run)


def _as_of(text: str | None, data_end):
    from features.labels import as_utc_instant

    return as_utc_instant(data_end if text is None else text)


def run(args: argparse.Namespace) -> int:
    """Score and write atomically; print counts by tier only (exit 0), or the problem (exit 2)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from config import ScaleOutConfig
    from features.validate import ContractError
    from engines.scoring import load_served_model
    from training.tracking import tracking_uri

    out: Path = args.out
    if out.suffix != ".parquet":
        print(f"lapse score-batch: --out must name a .parquet file (got {out.name})", file=sys.stderr)
        return EXIT_BAD_INPUT
    config = ScaleOutConfig()
    try:
        model = load_served_model(tracking_uri(), args.alias)
        if args.engine == "dask":
            tiers = _run_dask(args, model, config)
        else:
            tiers = _run_local(args, model, config)
    except ContractError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as exc:
        print(f"lapse score-batch: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    total = int(sum(tiers.values()))
    print(f"wrote {out}: {total:,} active patients scored with {model.name} version {model.version}")
    for name, _ in model.tiers:
        print(f"  {name:<10} {int(tiers.get(name, 0)):>9,}")
    return EXIT_OK


def _run_local(args, model, config) -> dict:
    from features.io import read_data_end
    from features.io import write_table
    from features.validate import load_cohort
    from engines.scoring import score_cohort

    cohort = load_cohort(args.data)
    as_of = _as_of(args.as_of, read_data_end(args.data, cohort.events))
    scores = score_cohort(cohort.patients, cohort.events, as_of, model, config.top_reasons)
    write_table(scores, args.out.parent, args.out.stem)
    return scores["tier"].value_counts().to_dict()


def _run_dask(args, model, config) -> dict:
    from engines.cluster import dask_client
    from engines.output import write_dataset
    from engines.partitions import data_end_of, read_partitioned
    from engines.scoring import distributed_scores

    with dask_client(args.scheduler, args.workers, config):
        cohort = read_partitioned(args.data, config=config)
        as_of = _as_of(args.as_of, data_end_of(args.data, cohort.events))
        write_dataset(distributed_scores(cohort, as_of, model, config.top_reasons), args.out)
        import dask.dataframe as dd

        return dd.read_parquet(str(args.out), columns=["tier"])["tier"].value_counts().compute().to_dict()
