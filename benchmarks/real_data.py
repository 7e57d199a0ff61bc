"""lapse on real data no one here wrote: the KDD Cup 2015 (XuetangX MOOC) courses of 2013.

Runs, in one process and on one temporal split (train on the earlier courses, test on the later ones, whole
course start dates per part: `training.splits.temporal_split` on lapse's table):
  - lapse's chain as `lapse train` runs it, without MLflow: the adapter's folder (examples/kddcup2015),
    the [events] declaration, validation, external labels at day 30, point-in-time features, the data-quality
    filter, then the baseline / usage logistic models and calibrated XGBoost (`training.fit.fit_and_evaluate`);
  - the peer: scikit-learn's HistGradientBoostingClassifier on the 30 x 7 daily count matrix, fitted on the
    train and validation rows;
  - the best one-feature rule (`training.honesty.best_one_feature_rule`, chosen on the train rows).
Prints the test AUC table, lapse's XGBoost AUC as a ratio of the matrix model's (target: >= 1), the data-quality
summary and the wall time of each step (one run each).

    .venv/bin/python -P benchmarks/real_data.py [--source /work/shared/data/kddcup2015]

Skips (exit 0, with the reason) when the data folder is absent.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier

from config import load_settings
from features.external_labels import load_labels
from features.io import read_data_end
from features.point_in_time import specs_for
from features.snapshots import training_table
from features.validate import load_cohort
from features.covariates import subgroup_frame
from training.fit import MODEL_NAMES, XGBOOST, fit_and_evaluate
from training.honesty import best_one_feature_rule
from training.metrics import roc_auc
from training.quality import feature_quality, usable_features

REPO = Path(__file__).resolve().parent.parent
ADAPTER = REPO / "examples" / "kddcup2015" / "adapter.py"
TARGET_RATIO = 1.0


def _adapter():
    """The example adapter (a script, not a package) loaded from its file."""
    spec = importlib.util.spec_from_file_location("kddcup2015_adapter", ADAPTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=Path("/work/shared/data/kddcup2015"))
    args = parser.parse_args()
    if not (args.source / "daily_2013.csv.gz").is_file():
        print(f"skipped: {args.source} has no daily_2013.csv.gz (the KDD Cup 2015 set is not on this machine)")
        return 0
    adapter = _adapter()
    times: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="lapse-bench-real-") as tmp:
        data = Path(tmp) / "kddcup2015"
        start = time.perf_counter()
        adapter.adapt(args.source, data)
        times["adapter (write the folder)"] = time.perf_counter() - start

        start = time.perf_counter()
        settings = load_settings(data)
        cohort = load_cohort(data, declared=settings.events)
        labels = load_labels(data, cohort.patients)
        table = training_table(cohort.patients, cohort.events, read_data_end(data, cohort.events),
                               feature_config=settings.features, label_config=settings.labels, labels=labels)
        times["lapse: validate, labels, features"] = time.perf_counter() - start

        start = time.perf_counter()
        specs = list(specs_for(settings.features))
        names = [s.name for s in specs]
        baseline = [s.name for s in specs if s.level == "patient" and s.group == "baseline"]
        quality = feature_quality(table, names)
        _, used, baseline = usable_features(specs, baseline, quality)
        groups = subgroup_frame(cohort.patients, settings.training.subgroups, settings.training.age_bands)
        outcome = fit_and_evaluate(table, used, baseline, groups, None, settings.training)
        times["lapse: fit, calibrate, evaluate"] = time.perf_counter() - start

    split = outcome.split
    y = table["dropout"].to_numpy(dtype=np.float64)
    start = time.perf_counter()
    ids, matrix = adapter.daily_matrix(args.source)
    rows = ids.get_indexer(table["patient_id"].astype(str).to_numpy())
    if (rows < 0).any():
        sys.exit("the daily matrix lacks some labelled enrolments")
    X = matrix[rows]
    fit_rows = np.concatenate([split.train, split.validation])
    peer = HistGradientBoostingClassifier(random_state=settings.training.seed).fit(X[fit_rows], y[fit_rows])
    peer_auc = roc_auc(y[split.test], peer.predict_proba(X[split.test])[:, 1])
    times["peer: 30x7 matrix, HistGradientBoosting"] = time.perf_counter() - start
    rule = best_one_feature_rule(table.reset_index(drop=True), split, used, np.ones(len(split.test), dtype=bool))

    test_courses = sorted(cohort.patients.set_index("patient_id").loc[table["patient_id"].iloc[split.test].unique(),
                                                                       "program"].unique())
    print(f"KDD Cup 2015, 2013 courses: {len(table):,} labelled enrolments; train / validation / test "
          f"{len(split.train):,} / {len(split.validation):,} / {len(split.test):,} "
          f"(test: the latest course start dates, courses {', '.join(test_courses)}); "
          f"test dropout rate {y[split.test].mean():.3f}")
    rows = [(f"lapse {name}", outcome.metrics[name]["pooled"]["auc"]) for name in MODEL_NAMES]
    rows += [("peer: HistGradientBoosting, 30x7 daily counts", peer_auc),
             (f"one-feature rule: {rule.describe()}", rule.test_auc)]
    width = max(len(label) for label, _ in rows)
    print(f"\n  {'model (test AUC, pooled)':<{width}} {'AUC':>6}")
    for label, auc in rows:
        print(f"  {label:<{width}} {auc:>6.3f}")
    ratio = outcome.metrics[XGBOOST]["pooled"]["auc"] / peer_auc
    print(f"\nlapse xgboost AUC / matrix model AUC: {ratio:.3f} (target >= {TARGET_RATIO:.2f}: "
          f"{'met' if ratio >= TARGET_RATIO else 'NOT met'})")
    print("\n" + "\n".join(quality.lines()))
    print("\nwall time, one run each:")
    for step, seconds in times.items():
        print(f"  {step:<42} {seconds:>6.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
