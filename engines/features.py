"""The labelled training table on Dask: features/ functions applied unchanged to each patient partition."""

from __future__ import annotations

import numpy as np
import pandas as pd

from config import EventsConfig, FeatureConfig, LabelConfig
from engines.partitions import PartitionedCohort, local_frames
from features.contract import PATIENT_COLUMNS
from features.declaration import rename_to_contract
from features.external_labels import labels_file, load_labels
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


def _training_partition(patients: pd.DataFrame, events: pd.DataFrame, labels: pd.DataFrame | None, data_end,
                        feature_config: FeatureConfig, label_config: LabelConfig, calendar: bool,
                        declared: EventsConfig, partition_info=None) -> pd.DataFrame:
    index = partition_info["number"] if partition_info else 0
    cohort = canonical_partition(patients, events, index, declared)
    if cohort is None:
        return training_meta(feature_config)
    if labels is not None:  # every partition gets them all: its own patients' rows, in the file's order
        labels = labels.loc[labels["patient_id"].isin(cohort.patients["patient_id"])].reset_index(drop=True)
        labels = labels.astype({"patient_id": "str"})  # Dask hands text over as its own string dtype
    return training_table(cohort.patients, cohort.events, data_end, feature_config=feature_config,
                          label_config=label_config, calendar=calendar, labels=labels)


_TIMES = tuple(c for c in PATIENT_COLUMNS if c.name in ("patient_id", "enrolled_at"))


def _times_meta() -> pd.DataFrame:
    return pd.DataFrame({"patient_id": pd.Series([], dtype="str"),
                         "enrolled_at": pd.Series([], dtype="datetime64[us, UTC]")})


def _patient_times(patients: pd.DataFrame, declared: EventsConfig, partition_info=None) -> pd.DataFrame:
    # A partition's patient ids and enrolment times as the contract reads them; what cannot be read is missing
    # here, and reported by the partition's own validation.
    renamed = rename_to_contract(patients.reset_index(drop=True), None, declared)[0]
    columns = tuple(c for c in _TIMES if c.name in renamed.columns)
    parsed, _ = parse_table(renamed[[c.name for c in columns]], columns, "patients")
    out = _times_meta()
    return pd.DataFrame({name: parsed[name] if name in parsed.columns else pd.Series([None] * len(parsed))
                         for name in out.columns}).astype(out.dtypes.to_dict())


def patient_times(cohort: PartitionedCohort):
    """A lazy Dask frame of every patient's id and enrolment time (one row per patient, from the patients table as
    read: no shuffle)."""
    return cohort.patients_read.map_partitions(_patient_times, cohort.declared, meta=_times_meta())


def calendar_origin(cohort: PartitionedCohort) -> pd.Timestamp | None:
    """Where calendar snapshots start when no start is set: the midnight (UTC) before the cohort's first enrolment,
    as `calendar_snapshot_times` takes it from a whole cohort (a partition's own first enrolment would move the
    dates). Computed on the cluster now, from the patients table; None when no enrolment time is readable."""
    first = patient_times(cohort)["enrolled_at"].min().compute()
    return None if pd.isna(first) else pd.Timestamp(first).floor("D")


def cohort_labels(data_dir, cohort: PartitionedCohort) -> pd.DataFrame | None:
    """The folder's external labels (`features.external_labels.load_labels`), checked here against every patient's
    enrolment time, gathered from the cluster (one row per patient); None without a labels table. ContractError
    names the file, column and rows of each problem, as on one machine."""
    if labels_file(data_dir) is None:
        return None
    return load_labels(data_dir, patient_times(cohort).compute().reset_index(drop=True))


def distributed_training_table(cohort: PartitionedCohort, data_end, feature_config: FeatureConfig = FeatureConfig(),
                               label_config: LabelConfig = LabelConfig(), calendar: bool = False,
                               labels: pd.DataFrame | None = None):
    """A lazy Dask frame of `training_table` rows, computed per patient partition (row order within partitions).

    With external `labels` (`cohort_labels`), the snapshots are the labelled times and their outcomes, as on one
    machine. Otherwise calendar snapshots (`calendar`, or no `as_of_days`) without a set start start at
    `calendar_origin`, as on one machine: that start is computed before this returns.
    """
    import dask.dataframe as dd  # an optional extra (lapse[dask]): imported only when the Dask engine runs

    if labels is None and (calendar or not feature_config.as_of_days) and feature_config.calendar_start is None:
        start = calendar_origin(cohort)
        if start is not None:
            feature_config = feature_config.model_copy(update={"calendar_start": start.to_pydatetime()})
    # One partition of labels goes whole to every patient partition.
    given = dd.from_pandas(labels, npartitions=1, sort=False) if labels is not None else None
    return dd.map_partitions(_training_partition, cohort.patients, cohort.events, given, data_end, feature_config,
                             label_config, calendar, cohort.declared, meta=training_meta(feature_config),
                             align_dataframes=False)
