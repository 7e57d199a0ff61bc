"""The tracked training job with its feature table built on Dask and its boosted trees trained by xgboost.dask.

Everything else is the single-machine job's own code: the loading (`load_training_data` with a
Dask table builder), the split (`fit_and_evaluate` makes it once and hands it to the booster fit),
the XGBoost parameters (`booster_params`), calibration, metrics, artifacts, registry and alias.
The feature table (one row per snapshot, never the events) is gathered to the client for the
logistic baselines and the holdout metrics.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from config import (DEFAULT_PATHS, EventsConfig, FeatureConfig, LabelConfig, Paths, ScaleOutConfig, TrainingConfig,
                    XGBoostParams)
from engines.features import cohort_labels, distributed_training_table
from engines.partitions import data_end_of, read_partitioned
from features.contract import PATIENT_COLUMNS
from features.declaration import rename_to_contract
from features.validate import parse_table
from models.estimators import best_rounds, booster_params
from training.data import LabelledCohort
from training.fit import LABEL, Split
from training.job import TrainingSummary, load_training_data, log_training_run
from training.tracking import connect, tracking_uri

PART = "_lapse_part"


def _canonical_patients(patients: pd.DataFrame, declared: EventsConfig) -> pd.DataFrame:
    # A partition's patients in canonical form, parsed as its validation parses them. The validation itself (with
    # the events) is the training table's, on the same partition: its problems are reported there, once.
    renamed = _patients_as_read(patients, declared)
    return renamed if len(renamed) == 0 else parse_table(renamed, PATIENT_COLUMNS, "patients")[0]


def _patients_as_read(patients: pd.DataFrame, declared: EventsConfig) -> pd.DataFrame:
    # An empty partition's patients (and the frame's meta): the program's column names read as lapse's.
    return rename_to_contract(patients, None, declared)[0].reset_index(drop=True)


def _with_part(frame: pd.DataFrame, part_of: pd.Series) -> pd.DataFrame:
    return frame.assign(**{PART: part_of.reindex(frame["patient_id"].to_numpy()).to_numpy(dtype=np.int8)})


@dataclass
class DaskTrainingTable:
    """A `TableBuilder` for `load_training_data`: the labelled table built per partition on the cluster.

    It keeps the persisted distributed table (`distributed`) for the booster fit, and returns the
    table gathered to the client in a fixed order.
    """

    client: object
    npartitions: int | None = None
    scale_out: ScaleOutConfig = ScaleOutConfig()
    distributed: object = None

    def __call__(self, data_dir: Path, feature_config: FeatureConfig, label_config: LabelConfig) -> LabelledCohort:
        import dask  # an optional extra (lapse[dask]): imported only when the Dask engine runs

        cohort = read_partitioned(data_dir, self.npartitions, self.scale_out, feature_config.events)
        data_end = data_end_of(data_dir, cohort)
        self.distributed = distributed_training_table(cohort, data_end, feature_config, label_config,
                                                      feature_config.calendar, cohort_labels(data_dir, cohort)).persist()
        patients_meta = _patients_as_read(cohort.patients._meta, cohort.declared)
        patients_ddf = cohort.patients.map_partitions(_canonical_patients, cohort.declared, meta=patients_meta)
        local, patients = dask.compute(self.distributed, patients_ddf)
        # A fixed order, whatever the partitioning: the run's fingerprint and split do not depend on it.
        local = local.sort_values(["patient_id", "as_of"], kind="stable", ignore_index=True)
        return LabelledCohort(local, patients.reset_index(drop=True), data_end)


@dataclass
class DaskBoosterFitter:
    """A `BoosterFitter` for `fit_and_evaluate` that trains on the distributed table with xgboost.dask.

    The split `fit_and_evaluate` made on the gathered table is mapped to patients (every row of a
    patient is in one part), so the cluster trains and early-stops on exactly the same rows.
    """

    client: object
    table: object
    workers_threads: int = 1

    def __call__(self, table: pd.DataFrame, split: Split, feature_names: list[str], params: XGBoostParams,
                 seed: int) -> xgb.Booster:
        from xgboost import dask as dxgb  # needs the optional dask extra

        part = np.zeros(len(table), dtype=np.int8)
        part[split.validation], part[split.test] = 1, 2
        part_of = pd.Series(part, index=table["patient_id"].to_numpy())
        part_of = part_of[~part_of.index.duplicated()]
        keyed = self.table.map_partitions(_with_part, part_of, meta=_with_part(self.table._meta, part_of))
        train, val = keyed[keyed[PART] == 0], keyed[keyed[PART] == 1]
        dtrain = dxgb.DaskDMatrix(self.client, train[feature_names].astype(np.float64), train[LABEL],
                                  feature_names=feature_names)
        dval = dxgb.DaskDMatrix(self.client, val[feature_names].astype(np.float64), val[LABEL],
                                feature_names=feature_names)
        out = dxgb.train(self.client, booster_params(params, seed, self.workers_threads), dtrain,
                         num_boost_round=params.max_rounds, evals=[(dval, "validation")],
                         early_stopping_rounds=params.early_stopping_rounds, verbose_eval=False)
        booster = best_rounds(out["booster"])
        booster.set_param({"nthread": params.nthread})
        return booster


def run_dask_training(client, data_dir: str | Path, config: TrainingConfig = TrainingConfig(),
                      feature_config: FeatureConfig = FeatureConfig(), label_config: LabelConfig = LabelConfig(),
                      tracking: str | None = None, paths: Paths = DEFAULT_PATHS,
                      npartitions: int | None = None, scale_out: ScaleOutConfig = ScaleOutConfig()) -> TrainingSummary:
    """The whole training job on a Dask cluster: same MLflow run, metrics, artifacts, registry and alias
    (`npartitions`, else partitions sized by `scale_out`)."""
    builder = DaskTrainingTable(client, npartitions, scale_out)
    data = load_training_data(data_dir, feature_config, label_config, build_table=builder)
    summary = log_training_run(data, config, label_config, tracking, paths, run_name="train (dask)",
                               fit_booster=DaskBoosterFitter(client, builder.distributed))
    connect(tracking or tracking_uri(paths), paths).set_tag(summary.run_id, "lapse.engine", "dask")
    return summary
