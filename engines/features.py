"""The labelled training table on Dask: features/ functions applied unchanged to each patient partition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from config import EventsConfig, FeatureConfig, LabelConfig
from engines.partitions import PartitionedCohort, local_frames
from features.contract import PATIENT_COLUMNS
from features.declaration import rename_to_contract
from features.point_in_time import specs_for
from features.snapshots import training_table
from features.validate import parse_table, validate_tables


def canonical_partition(patients: pd.DataFrame, events: pd.DataFrame, index: int,
                        declared: EventsConfig = EventsConfig()):
    """One partition's tables checked against the data contract and in canonical form (None: no patients).

    `declared` (the program's [events] table) renames the program's columns and event types first, as on one
    machine. Problems name the partition and its row numbers (rows count from 1 within the partition).
    """
    patients, events = local_frames(patients, events)
    if len(patients) == 0:
        if len(events):
            raise ValueError(f"events (partition {index}): {len(events)} event row(s) of patients not in the "
                             "patients table")
        return None
    return validate_tables(patients, events, patients_source=f"patients (partition {index})",
                           events_source=f"events (partition {index})", declared=declared)


def training_meta(feature_config: FeatureConfig) -> pd.DataFrame:
    """The empty training table: column names and dtypes of `training_table`'s result."""
    stamp = pd.Series([], dtype="datetime64[us, UTC]")
    columns = {"patient_id": pd.Series([], dtype="str"), "as_of": stamp, "as_of_day": pd.Series([], dtype=np.int64),
               "enrolled_at": stamp}
    columns.update({s.name: pd.Series([], dtype=np.float64) for s in specs_for(feature_config)})
    columns["dropout"] = pd.Series([], dtype=np.int64)
    return pd.DataFrame(columns)


def _training_partition(patients: pd.DataFrame, events: pd.DataFrame, data_end, feature_config: FeatureConfig,
                        label_config: LabelConfig, calendar: bool, declared: EventsConfig,
                        partition_info=None) -> pd.DataFrame:
    index = partition_info["number"] if partition_info else 0
    cohort = canonical_partition(patients, events, index, declared)
    if cohort is None:
        return training_meta(feature_config)
    return training_table(cohort.patients, cohort.events, data_end, feature_config=feature_config,
                          label_config=label_config, calendar=calendar)


def _first_enrolment(patients: pd.DataFrame, declared: EventsConfig, partition_info=None) -> pd.DataFrame:
    # The partition's earliest enrolment time (NaT: none readable; the tables' problems are reported elsewhere).
    renamed = rename_to_contract(patients.reset_index(drop=True), None, declared)[0]
    if "enrolled_at" not in renamed.columns:
        return pd.DataFrame({"first": pd.Series([pd.NaT], dtype="datetime64[us, UTC]")})
    parsed, _ = parse_table(renamed[["enrolled_at"]], tuple(c for c in PATIENT_COLUMNS if c.name == "enrolled_at"),
                            "patients")
    return pd.DataFrame({"first": pd.Series([parsed["enrolled_at"].min()], dtype="datetime64[us, UTC]")})


def calendar_origin(cohort: PartitionedCohort) -> pd.Timestamp | None:
    """Where calendar snapshots start when no start is set: the midnight (UTC) before the cohort's first enrolment,
    as `calendar_snapshot_times` takes it from a whole cohort (a partition's own first enrolment would move the
    dates). Computed on the cluster now, from the patients table; None when no enrolment time is readable."""
    meta = pd.DataFrame({"first": pd.Series([], dtype="datetime64[us, UTC]")})
    first = cohort.patients.map_partitions(_first_enrolment, cohort.declared, meta=meta)["first"].min().compute()
    return None if pd.isna(first) else pd.Timestamp(first).floor("D")


def distributed_training_table(cohort: PartitionedCohort, data_end, feature_config: FeatureConfig = FeatureConfig(),
                               label_config: LabelConfig = LabelConfig(), calendar: bool = False):
    """A lazy Dask frame of `training_table` rows, computed per patient partition (row order within partitions).

    Calendar snapshots (`calendar`, or no `as_of_days`) without a set start start at `calendar_origin`, as on one
    machine: that start is computed before this returns.
    """
    import dask.dataframe as dd  # an optional extra (lapse[dask]): imported only when the Dask engine runs

    if (calendar or not feature_config.as_of_days) and feature_config.calendar_start is None:
        start = calendar_origin(cohort)
        if start is not None:
            feature_config = feature_config.model_copy(update={"calendar_start": start.to_pydatetime()})
    return dd.map_partitions(_training_partition, cohort.patients, cohort.events, data_end, feature_config,
                             label_config, calendar, cohort.declared, meta=training_meta(feature_config),
                             align_dataframes=False)
