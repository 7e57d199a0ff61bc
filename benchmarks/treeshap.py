"""SHAP contributions of the served model: lapse's tables (models/treeshap.py) against XGBoost's own.

Loads the champion (read only), takes the 1,000 rows of benchmarks/serving.py's batch (simulated
patients' features in the model's feature order, NaN where not known; or a /score body's, --batch),
checks that the tables give exactly XGBoost's `pred_contribs` numbers, and prints medians for 1 row and
the 1,000 rows on 1 and 2 threads, the tables' build time and size, and the first call's time in a fresh
process with an empty numba cache (compiling) and again with that cache filled.

    .venv/bin/python -P benchmarks/treeshap.py [--tracking-uri URI] [--model MODEL_URI] [--batch BODY.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import mlflow
import numpy as np
import xgboost as xgb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.estimators import _xgboost_contributions, booster_contributions  # noqa: E402
from models.scorer import load_scorer  # noqa: E402
from models.treeshap import TreeShap  # noqa: E402

sys.path.append(str(Path(__file__).resolve().parent))
from _serving_load import Workload  # noqa: E402

DEFAULT_URI = f"sqlite:///{ROOT / '.lapse' / 'mlflow.db'}"


def first_call(cache_dir: str) -> float:
    """Seconds of the first contributions call of a fresh process whose numba cache is `cache_dir`."""
    code = ("import time, numpy as np, xgboost as xgb\n"
            "from models.treeshap import TreeShap\n"
            "X = np.random.default_rng(0).normal(size=(200, 4))\n"
            "b = xgb.train({'max_depth': 3, 'nthread': 1}, xgb.DMatrix(X, label=X[:, 0]), 2)\n"
            "shap = TreeShap(bytes(b.save_raw('ubj')))\n"
            "t = time.perf_counter(); shap.contributions(X[:1]); print(time.perf_counter() - t)\n")
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, capture_output=True, text=True)
    return float(out.stdout.split()[-1])


def median_ms(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default=DEFAULT_URI)
    parser.add_argument("--model", default="models:/lapse-dropout@champion")
    parser.add_argument("--batch", default=None, help="a /score body of feature items (default: the serving "
                        "benchmark's 1,000 simulated rows)")
    parser.add_argument("--repeat", type=int, default=31)
    args = parser.parse_args()

    # The registered version's source is a logged model, which MLflow resolves in the default registry.
    mlflow.set_tracking_uri(args.tracking_uri)
    mlflow.set_registry_uri(args.tracking_uri)
    scorer = load_scorer(args.model, tracking_uri=args.tracking_uri)
    names = scorer.feature_names
    if args.batch is None:
        X = Workload(list(names), scorer, scorer.metadata.feature_config()).batches_rows[0]
        source = "the serving benchmark's batch"
    else:
        patients = json.loads(Path(args.batch).read_text())["patients"]
        X = np.array([[np.nan if p["features"].get(n) is None else float(p["features"][n]) for n in names]
                      for p in patients], dtype=np.float64)
        source = args.batch
    booster = scorer.booster

    raw = bytes(booster.save_raw("ubj"))
    build = [median_ms(lambda: TreeShap(raw), 1) for _ in range(5)]
    shap = TreeShap(raw)
    check = median_ms(lambda: shap._check(booster), 3)
    want = booster.predict(xgb.DMatrix(X), pred_contribs=True, validate_features=False).astype(np.float64)
    got = booster_contributions(booster, X, nthread=2)
    exact = np.array_equal(got, want) and all(
        np.array_equal(booster_contributions(booster, X[i:i + 1]), want[i:i + 1]) for i in range(len(X)))
    print(f"model {args.model}: {booster.num_boosted_rounds()} trees, {len(names)} features; {len(X):,} rows of "
          f"{source}: lapse's contributions equal XGBoost's pred_contribs bit for bit (all rows at once and "
          f"each alone): {exact}")
    print(f"tables: build {statistics.median(build):.0f} ms (median of 5), {shap.table_bytes / 1e6:.2f} MB; "
          f"check against XGBoost on 128 probe rows {check:.0f} ms")
    with tempfile.TemporaryDirectory() as cache:
        cold, warm = first_call(cache), first_call(cache)
    print(f"first call in a fresh process: {cold * 1000:.0f} ms with an empty numba cache (compiling), "
          f"{warm * 1000:.0f} ms with it filled")

    print(f"{'rows':>6}{'threads':>9}{'XGBoost ms':>12}{'lapse ms':>10}{'ratio':>8}")
    for rows in (1, len(X)):
        part = X[:rows]
        for threads in (1, 2):
            theirs = booster.copy()
            theirs.set_param({"nthread": threads})
            repeat = args.repeat * (20 if rows == 1 else 1)
            a = median_ms(lambda: _xgboost_contributions(theirs, part, threads), repeat)
            b = median_ms(lambda: booster_contributions(booster, part, threads), repeat)
            print(f"{rows:>6,}{threads:>9}{a:>12.3f}{b:>10.3f}{a / b:>7.1f}x")
    cpu = []
    for _ in range(args.repeat):
        start = time.process_time()
        booster_contributions(booster, X, 1)
        cpu.append((time.process_time() - start) * 1000)
    print(f"CPU per 1,000 rows on one thread: {statistics.median(cpu):.2f} ms")


if __name__ == "__main__":
    main()
