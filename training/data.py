"""What training reads from a data folder: the program's feature settings, the labelled table, the true risks.

Both engines go through `training.job.load_training_data`; only the step that builds the labelled
table differs (`local_training_table` here, the Dask engine's on a cluster).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple, Protocol

import numpy as np
import pandas as pd

from config import FeatureConfig, LabelConfig
from features.external_labels import load_labels
from features.io import TRUE_PROBABILITY_COLUMNS, TRUE_PROBABILITY_TABLE, read_data_end
from features.snapshots import training_table
from features.validate import load_cohort

log = logging.getLogger("lapse.training")



class LabelledCohort(NamedTuple):
    """The labelled training table of a data folder, its patients and its end of observation."""

    table: pd.DataFrame
    patients: pd.DataFrame
    data_end: pd.Timestamp


class TableBuilder(Protocol):
    """Builds the labelled training table of a data folder (on this machine, or on a cluster)."""

    def __call__(self, data_dir: Path, feature_config: FeatureConfig, label_config: LabelConfig) -> LabelledCohort:
        ...


def local_training_table(data_dir: Path, feature_config: FeatureConfig, label_config: LabelConfig) -> LabelledCohort:
    """Validate the folder's tables and build the labelled training table in this process."""
    cohort = load_cohort(data_dir, declared=feature_config.events)
    data_end = read_data_end(data_dir, cohort.events)
    table = training_table(cohort.patients, cohort.events, data_end, days=feature_config.as_of_days,
                           feature_config=feature_config, label_config=label_config,
                           calendar=feature_config.calendar, labels=load_labels(data_dir, cohort.patients))
    return LabelledCohort(table, cohort.patients, data_end)


def read_true_probabilities(data_dir: str | Path, snapshots: pd.DataFrame,
                            label_config: LabelConfig) -> np.ndarray | None:
    """The true dropout probability of each snapshot row from the folder's true_probability table, if any.

    None when the folder has no such table (real data) or when the table does not cover every row
    for this label definition and horizon (then the run has no ceiling metric; a warning says why).
    """
    path = Path(data_dir) / f"{TRUE_PROBABILITY_TABLE}.parquet"
    if not path.is_file():
        return None
    table = pd.read_parquet(path)
    missing = [c for c in TRUE_PROBABILITY_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)}")
    chosen = table[(table["definition"] == label_config.definition)
                   & (table["horizon_days"] == label_config.horizon_days)]
    keys = ["patient_id", "as_of_day"]
    if chosen.duplicated(keys).any():
        raise ValueError(f"{path}: more than one probability for a (patient_id, as_of_day, definition, "
                         "horizon_days)")
    rows = snapshots[keys].astype({"patient_id": "str", "as_of_day": np.int64})
    chosen = chosen[[*keys, "probability"]].astype({"patient_id": "str", "as_of_day": np.int64})
    probability = rows.merge(chosen, on=keys, how="left", validate="many_to_one")["probability"].to_numpy(
        dtype=np.float64, na_value=np.nan)
    uncovered = int(np.isnan(probability).sum())
    if uncovered:
        log.warning("%s covers %d of %d training rows for definition '%s' and a %d-day horizon: no ceiling "
                    "metric", path, len(probability) - uncovered, len(probability), label_config.definition,
                    label_config.horizon_days)
        return None
    return probability
