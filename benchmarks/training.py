"""The training chain on the default simulated cohort: wall time and the issue's model targets.

Runs the chain as a user would, each step a fresh process: simulate the cohort into a temporary
folder (`lapse simulate` when the command exists, else the simulator in a subprocess), then
`lapse train` (validation, snapshots, features, labels, three models, MLflow logging and
registration) into a temporary SQLite store. Prints the time of each step, then the day-7 test
figures read back from the MLflow run against the targets:
  XGBoost AUC >= 0.95 x ceiling AUC; XGBoost AUC >= baseline-only AUC + 0.10; ECE <= 0.03;
  whole chain < 180 s on 2 cores.

    .venv/bin/python benchmarks/training.py [--patients 20000] [--seed 20261201] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_CEILING_RATIO = 0.95
TARGET_OVER_BASELINE = 0.10
TARGET_ECE = 0.03
TARGET_CHAIN_S = 180.0

_SIMULATE = """
import sys
from dataclasses import replace
from simulation import simulate
from simulation.output import write_cohort
from simulation.settings import SimulationConfig
config = replace(SimulationConfig(), n_patients=int(sys.argv[1]), seed=int(sys.argv[2]))
write_cohort(simulate(config), config, sys.argv[3], force=True)
"""


def _run(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(cmd[:3])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=20261201)
    parser.add_argument("--threads", type=int, default=1, help="XGBoost training threads")
    args = parser.parse_args()

    bin_dir = Path(sys.executable).parent
    lapse = str(bin_dir / "lapse")
    with tempfile.TemporaryDirectory(prefix="lapse-bench-train-") as tmp:
        data, db = Path(tmp) / "data", Path(tmp) / "mlflow.db"
        env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{db}", "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
        has_simulate = subprocess.run([lapse, "simulate", "--help"], capture_output=True).returncode == 0
        if has_simulate:
            sim_s = _run([lapse, "simulate", "--out", str(data), "--patients", str(args.patients),
                          "--seed", str(args.seed), "--force"], env)
        else:
            data.mkdir()
            sim_s = _run([sys.executable, "-c", _SIMULATE, str(args.patients), str(args.seed), str(data)], env)
        train_s = _run([lapse, "train", "--data", str(data), "--seed", str(args.seed),
                        "--threads", str(args.threads)], env)

        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=env["MLFLOW_TRACKING_URI"])
        version = client.get_model_version_by_alias("lapse-dropout", "candidate")
        parent = client.get_run(version.run_id)
        m = parent.data.metrics
        # One nested run per model, with the headline (day-7) metrics under their own names.
        nested = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent.info.run_id}'")
        by_model = {run.info.run_name: run.data.metrics for run in nested}

    total = sim_s + train_s
    xgb, base, ceil = by_model["xgboost"]["auc"], by_model["baseline_logistic"]["auc"], by_model["ceiling"]["auc"]
    checks = [
        ("XGBoost AUC / ceiling AUC", xgb / ceil, f">= {TARGET_CEILING_RATIO}", xgb / ceil >= TARGET_CEILING_RATIO),
        ("XGBoost AUC - baseline AUC", xgb - base, f">= {TARGET_OVER_BASELINE}", xgb - base >= TARGET_OVER_BASELINE),
        ("XGBoost ECE", by_model["xgboost"]["ece"], f"<= {TARGET_ECE}", by_model["xgboost"]["ece"] <= TARGET_ECE),
        ("chain seconds", total, f"< {TARGET_CHAIN_S:.0f}", total < TARGET_CHAIN_S),
    ]
    print(f"cohort: {args.patients:,} simulated patients, seed {args.seed}, "
          f"simulate via {'lapse simulate' if has_simulate else 'the simulator'}")
    print(f"simulate {sim_s:6.1f} s")
    print(f"train    {train_s:6.1f} s  ({m['count.train_rows']:,.0f} train / {m['count.test_rows']:,.0f} test rows, "
          f"{m['count.best_iteration']:.0f} rounds)")
    print(f"total    {total:6.1f} s")
    print("day-7 test set:")
    for model in ("baseline_logistic", "usage_logistic", "xgboost", "ceiling"):
        mm = by_model[model]
        print(f"  {model:<18} AUC {mm['auc']:.4f}  PR AUC {mm['pr_auc']:.4f}  "
              f"ECE {mm['ece']:.4f}  TPR gap {mm.get('tpr_gap.largest', float('nan')):.3f}")
    failed = 0
    for name, value, target, ok in checks:
        failed += not ok
        print(f"{'pass' if ok else 'MISS'}  {name:<28} {value:8.4f}  (target {target})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
