"""Benchmark the Dask engine against the single-process path: features and batch scoring, rows per second.

Simulates a cohort (default 8,000 patients, 120 days), writes it to Parquet, trains and registers
a model in a throw-away MLflow store (not timed), then times (medians of --repeat runs):
  - features: the labelled training table, Parquet in -> Parquet out (local: load_cohort +
    training_table + write_table; dask: read_partitioned + per-partition training_table + write_dataset);
  - batch scoring: every active patient at data_end with risk, tier and reasons, Parquet out;
for the local engine and for local Dask clusters of each --workers count (one thread per worker;
cluster start-up not timed). Prints the table and the speed-up of each Dask run over local.

    .venv/bin/python benchmarks/scaleout.py [--patients 8000] [--days 120] [--workers 1,2] [--repeat 3]
        [--events-per-partition N] [--scheduler ADDRESS --tmp SHARED_DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

from _timing import timed

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def _cohort(out: Path, patients: int, days: int) -> tuple[int, int]:
    from simulation.settings import SimulationConfig
    from features.io import write_table
    from simulation import simulate

    sim = simulate(replace(SimulationConfig(), n_patients=patients, days=days))
    for name in ("patients", "events", "truth"):
        write_table(getattr(sim, name), out, name)
    (out / "meta.json").write_text(json.dumps({"data_end": sim.data_end.isoformat()}))
    return len(sim.patients), len(sim.events)


def _model(data: Path, uri: str):
    from config import TrainingConfig, XGBoostParams
    from engines.scoring import load_served_model
    from training.job import run_training

    config = TrainingConfig(xgboost=XGBoostParams(nthread=1))
    run_training(data, config, tracking=uri)
    return load_served_model(uri, config.candidate_alias)


def _local(data: Path, out: Path, model, repeat: int) -> dict[str, tuple[float, int]]:
    from features.io import read_data_end, write_table
    from features.snapshots import training_table
    from features.validate import load_cohort
    from engines.scoring import score_cohort

    def features():
        cohort = load_cohort(data)
        table = training_table(cohort.patients, cohort.events, read_data_end(data, cohort.events))
        write_table(table, out, "features_local")
        return len(table)

    def scores():
        cohort = load_cohort(data)
        result = score_cohort(cohort.patients, cohort.events, read_data_end(data, cohort.events), model)
        write_table(result, out, "scores_local")
        return len(result)

    return {"features": timed(features, repeat), "scoring": timed(scores, repeat)}


def _dask(data: Path, out: Path, model, workers: int, repeat: int, config,
          scheduler: str | None = None) -> dict[str, tuple[float, int]]:
    import dask.dataframe as dd

    from engines.cluster import dask_client
    from engines.features import distributed_training_table
    from engines.output import write_dataset
    from engines.partitions import data_end_of, read_partitioned
    from engines.scoring import distributed_scores

    def count(path: Path) -> int:
        return int(dd.read_parquet(str(path), columns=["patient_id"]).shape[0].compute())

    with dask_client(scheduler, workers, config):
        def features():
            cohort = read_partitioned(data, config=config)
            table = distributed_training_table(cohort, data_end_of(data, cohort))
            return count(write_dataset(table, out / f"features_dask{workers}.parquet"))

        def scores():
            cohort = read_partitioned(data, config=config)
            result = distributed_scores(cohort, data_end_of(data, cohort), model)
            return count(write_dataset(result, out / f"scores_dask{workers}.parquet"))

        features(), scores()  # the first runs import lapse (and the serving code) on every worker: not timed
        return {"features": timed(features, repeat), "scoring": timed(scores, repeat)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=8_000)
    parser.add_argument("--days", type=int, default=120)
    parser.add_argument("--workers", default="1,2", help="Dask worker counts to time, comma-separated")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--events-per-partition", type=int, default=None,
                        help="partition size (default: ScaleOutConfig, at least 4 partitions here)")
    parser.add_argument("--scheduler", default=None, help="time a running cluster instead of local ones")
    parser.add_argument("--tmp", default=None, help="folder for the data and outputs (shared storage with --scheduler)")
    args = parser.parse_args(argv)

    from config import ScaleOutConfig

    with tempfile.TemporaryDirectory(prefix="lapse-bench-scaleout-", dir=args.tmp) as tmp:
        root = Path(tmp)
        data = root / "data"
        data.mkdir()
        n_patients, n_events = _cohort(data, args.patients, args.days)
        per_part = args.events_per_partition or max(1, min(ScaleOutConfig().events_per_partition, n_events // 4))
        config = ScaleOutConfig(events_per_partition=per_part)
        partitions = -(-n_events // per_part)
        print(f"cohort: {n_patients:,} patients, {n_events:,} events; {partitions} partitions of "
              f"~{per_part:,} events; {os.cpu_count()} CPUs; median of {args.repeat}")
        model = _model(data, f"sqlite:///{root / 'mlflow.db'}")

        results = {"local (1 process)": _local(data, root, model, args.repeat)}
        if args.scheduler:
            results[f"dask, {args.scheduler}"[:20]] = _dask(data, root, model, 0, args.repeat, config,
                                                            args.scheduler)
        for workers in ([] if args.scheduler else (int(w) for w in args.workers.split(",") if w.strip())):
            results[f"dask, {workers} worker{'s' if workers > 1 else ''}"] = _dask(
                data, root, model, workers, args.repeat, config)

        base = results["local (1 process)"]
        print(f"{'engine':<20} {'features s':>10} {'snapshots/s':>12} {'events/s':>11} {'x local':>8} "
              f"{'scoring s':>10} {'scored/s':>9} {'patients/s':>11} {'x local':>8}")
        for name, r in results.items():
            (f_s, f_rows), (s_s, s_rows) = r["features"], r["scoring"]
            print(f"{name:<20} {f_s:>10.2f} {f_rows / f_s:>12,.0f} {n_events / f_s:>11,.0f} "
                  f"{base['features'][0] / f_s:>8.2f} {s_s:>10.2f} {s_rows / s_s:>9,.0f} "
                  f"{n_patients / s_s:>11,.0f} {base['scoring'][0] / s_s:>8.2f}")
        rows = {name: (r["features"][1], r["scoring"][1]) for name, r in results.items()}
        if len(set(rows.values())) != 1:
            print(f"row counts differ between engines: {rows}", file=sys.stderr)
            return 1
        print(f"rows per run: {base['features'][1]:,} snapshots, {base['scoring'][1]:,} active patients scored "
              "(equal on every engine)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
