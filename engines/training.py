"""The tracked training job with its feature table built on Dask and its boosted trees trained by xgboost.dask.

Everything after the booster (calibration, metrics, subgroups, artifacts, registry, alias) is
the single-machine job's own code: the feature table (one row per snapshot, never the events)
is gathered to the client for the logistic baselines and the holdout metrics.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from config import DEFAULT_PATHS, FeatureConfig, LabelConfig, Paths, TrainingConfig
from training.splits import temporal_split

PART = "_lapse_part"


def _canonical_patients(patients: pd.DataFrame, events: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    from engines.features import canonical_partition

    cohort = canonical_partition(patients, events, partition_info["number"] if partition_info else 0)
    return patients.reset_index(drop=True) if cohort is None else cohort.patients


def _with_part(frame: pd.DataFrame, part_of: pd.Series) -> pd.DataFrame:
    return frame.assign(**{PART: part_of.reindex(frame["patient_id"].to_numpy()).to_numpy(dtype=np.int8)})


def dask_booster_fitter(client, table, part_of: pd.Series, workers_threads: int = 1):
    """A `fit_booster` for `fit_and_evaluate` that trains on the distributed `table` with xgboost.dask.

    `part_of` maps patient_id to 0 (train), 1 (validation), 2 (test): the same temporal split
    `fit_and_evaluate` makes on the gathered table, so both see the same rows in each part.
    """
    import xgboost as xgb
    from xgboost import dask as dxgb

    def fit(X_train, y_train, X_val, y_val, feature_names, params, seed):
        keyed = table.map_partitions(_with_part, part_of, meta=_with_part(table._meta, part_of))
        train, val = keyed[keyed[PART] == 0], keyed[keyed[PART] == 1]
        if len(X_train) != int(train.shape[0].compute()):
            raise RuntimeError("the distributed and gathered training tables disagree on the training rows")
        dtrain = dxgb.DaskDMatrix(client, train[feature_names].astype(np.float64), train["dropout"],
                                  feature_names=feature_names)
        dval = dxgb.DaskDMatrix(client, val[feature_names].astype(np.float64), val["dropout"],
                                feature_names=feature_names)
        out = dxgb.train(client, {
            "objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
            "learning_rate": params.learning_rate, "max_depth": params.max_depth,
            "min_child_weight": params.min_child_weight, "subsample": params.subsample,
            "colsample_bytree": params.colsample_bytree, "reg_lambda": params.reg_lambda, "seed": seed,
            "nthread": workers_threads,
        }, dtrain, num_boost_round=params.max_rounds, evals=[(dval, "validation")],
            early_stopping_rounds=params.early_stopping_rounds, verbose_eval=False)
        booster: xgb.Booster = out["booster"]
        best = booster.best_iteration
        sliced = booster[: best + 1]
        sliced.set_attr(best_iteration=str(best))
        sliced.set_param({"nthread": params.nthread})
        return sliced

    return fit


def dask_training_data(client, data_dir: str | Path, feature_config: FeatureConfig = FeatureConfig(),
                       label_config: LabelConfig = LabelConfig(), npartitions: int | None = None):
    """TrainingData as `load_training_data` builds it, from features computed per partition on the cluster.

    Returns (TrainingData, the persisted distributed table).
    """
    import dask

    from engines.features import distributed_training_table
    from engines.partitions import data_end_of, read_partitioned
    from training.job import TrainingData

    data_dir = Path(data_dir)
    cohort = read_partitioned(data_dir, npartitions)
    data_end = data_end_of(data_dir, cohort.events)
    table = distributed_training_table(cohort, data_end, feature_config, label_config).persist()
    patients_meta = cohort.patients._meta.reset_index(drop=True)
    patients_ddf = cohort.patients.map_partitions(_canonical_patients, cohort.events, meta=patients_meta,
                                                  align_dataframes=False)
    local, patients = dask.compute(table, patients_ddf)
    if len(local) == 0:
        raise ValueError(f"{data_dir}: no eligible, uncensored snapshots to train on")
    # A fixed order, whatever the partitioning: the run's fingerprint and split do not depend on it.
    local = local.sort_values(["patient_id", "as_of"], kind="stable", ignore_index=True)
    patients = patients.reset_index(drop=True)
    truth = None
    truth_file = data_dir / "truth.parquet"
    if truth_file.is_file():
        from simulation import true_dropout_probability

        truth = true_dropout_probability(pd.read_parquet(truth_file), local[["patient_id", "as_of_day"]],
                                         label_config)
    return TrainingData(local, patients, truth, data_end, feature_config), table


def run_dask_training(client, data_dir: str | Path, config: TrainingConfig = TrainingConfig(),
                      feature_config: FeatureConfig = FeatureConfig(), label_config: LabelConfig = LabelConfig(),
                      tracking: str | None = None, paths: Paths = DEFAULT_PATHS, npartitions: int | None = None):
    """The whole training job on a Dask cluster: same MLflow run, metrics, artifacts, registry and alias."""
    from training.job import log_training_run

    data, table = dask_training_data(client, data_dir, feature_config, label_config, npartitions)
    split = temporal_split(data.table, config.test_fraction, config.validation_fraction)
    part = np.zeros(len(data.table), dtype=np.int8)
    part[split.validation], part[split.test] = 1, 2
    part_of = pd.Series(part, index=data.table["patient_id"].to_numpy())
    part_of = part_of[~part_of.index.duplicated()]
    fitter = dask_booster_fitter(client, table, part_of)
    summary = log_training_run(data, config, label_config, tracking, paths, run_name="train (dask)",
                               fit_booster=fitter)
    from training.tracking import connect, tracking_uri

    connect(tracking or tracking_uri(paths), paths).set_tag(summary.run_id, "lapse.engine", "dask")
    return summary
