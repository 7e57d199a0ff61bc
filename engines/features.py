"""The labelled training table on Dask: features/ functions applied unchanged to each patient partition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from config import FeatureConfig, LabelConfig
from engines.partitions import PartitionedCohort, local_frames
from features.point_in_time import specs_for
from features.snapshots import training_table
from features.validate import validate_tables


def canonical_partition(patients: pd.DataFrame, events: pd.DataFrame, index: int):
    """One partition's tables checked against the data contract and in canonical form (None: no patients).

    Problems name the partition and its row numbers (rows count from 1 within the partition).
    """
    patients, events = local_frames(patients, events)
    if len(patients) == 0:
        if len(events):
            raise ValueError(f"events (partition {index}): {len(events)} event row(s) of patients not in the "
                             "patients table")
        return None
    return validate_tables(patients, events, patients_source=f"patients (partition {index})",
                           events_source=f"events (partition {index})")


def training_meta(feature_config: FeatureConfig) -> pd.DataFrame:
    """The empty training table: column names and dtypes of `training_table`'s result."""
    stamp = pd.Series([], dtype="datetime64[us, UTC]")
    columns = {"patient_id": pd.Series([], dtype="str"), "as_of": stamp, "as_of_day": pd.Series([], dtype=np.int64),
               "enrolled_at": stamp}
    columns.update({s.name: pd.Series([], dtype=np.float64) for s in specs_for(feature_config)})
    columns["dropout"] = pd.Series([], dtype=np.int64)
    return pd.DataFrame(columns)


def _training_partition(patients: pd.DataFrame, events: pd.DataFrame, data_end, feature_config: FeatureConfig,
                        label_config: LabelConfig, calendar: bool, partition_info=None) -> pd.DataFrame:
    index = partition_info["number"] if partition_info else 0
    cohort = canonical_partition(patients, events, index)
    if cohort is None:
        return training_meta(feature_config)
    return training_table(cohort.patients, cohort.events, data_end, feature_config=feature_config,
                          label_config=label_config, calendar=calendar)


def distributed_training_table(cohort: PartitionedCohort, data_end, feature_config: FeatureConfig = FeatureConfig(),
                               label_config: LabelConfig = LabelConfig(), calendar: bool = False):
    """A lazy Dask frame of `training_table` rows, computed per patient partition (row order within partitions)."""
    import dask.dataframe as dd  # an optional extra (lapse[dask]): imported only when the Dask engine runs

    return dd.map_partitions(_training_partition, cohort.patients, cohort.events, data_end, feature_config,
                             label_config, calendar, meta=training_meta(feature_config), align_dataframes=False)
