"""Patients and events as Dask frames partitioned by patient: partition i of both holds the same whole patients.

Tables are read lazily from Parquet (a file or a dataset folder) and moved by a hash of
patient_id, so no partition, and never the client, needs the whole event table.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import pandas as pd
import pyarrow.parquet as pq

from config import EventsConfig, ScaleOutConfig
from features.contract import EVENT_COLUMNS
from features.io import find_table, meta_data_end
from features.labels import as_utc_instant
from features.validate import parse_table


class PartitionedCohort(NamedTuple):
    """Dask frames of patients and events, hash-shuffled alike on patient_id (partition i of each matches).

    The frames hold the tables as read: `declared` (the program's [events] table) names their columns and event
    types, and each partition is validated with it (`engines.features.canonical_partition`). `patients_read` and
    `events_read` are the same tables before the shuffle, for figures of a whole table (the data end, the enrolment
    times), which need no patient's rows together: computing them from the shuffled frames would move every event
    once more.
    """

    patients: object
    events: object
    npartitions: int
    patients_read: object
    events_read: object
    declared: EventsConfig = EventsConfig()


def _text_ids(frame: pd.DataFrame, key: str) -> pd.DataFrame:
    # One dtype in both tables, so equal ids hash alike whatever the files stored.
    return frame.assign(**{key: frame[key].astype("str")})


def _parquet(data_dir: Path, name: str) -> Path:
    path = find_table(data_dir, name)
    if path.suffix == ".csv":
        raise ValueError(f"{path}: the Dask engine reads Parquet only (a {name}.parquet file or {name}/ folder)")
    return path


def read_partitioned(data_dir: str | Path, npartitions: int | None = None,
                     config: ScaleOutConfig = ScaleOutConfig(),
                     declared: EventsConfig = EventsConfig()) -> PartitionedCohort:
    """Lazy patients and events of a data folder, partitioned by patient (sized from the events' Parquet metadata).

    `declared` is the program's [events] table: its column names are read as lapse's, and its event types when each
    partition is validated.
    """
    import dask.dataframe as dd  # an optional extra (lapse[dask]): imported only when the Dask engine runs

    data_dir = Path(data_dir)
    p_path, e_path = _parquet(data_dir, "patients"), _parquet(data_dir, "events")
    if npartitions is None:
        n_events = sum(pq.ParquetFile(f).metadata.num_rows for f in _files(e_path))
        npartitions = max(1, math.ceil(n_events / config.events_per_partition))
    patients = dd.read_parquet(str(p_path))
    events = dd.read_parquet(str(e_path))
    key = declared.columns.patient_id
    for name, frame in (("patients", patients), ("events", events)):
        if key not in frame.columns:
            raise ValueError(f"{data_dir}: the {name} table has no {key} column")
    keyed = [frame.map_partitions(_text_ids, key, meta=_text_ids(frame._meta, key)) for frame in (patients, events)]
    # A hash shuffle on the patient id sends a patient's rows of both tables to the same output partition.
    p, e = (frame.shuffle(on=key, npartitions=npartitions) for frame in keyed)
    return PartitionedCohort(p, e, npartitions, *keyed, declared)


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("*.parquet"))


def local_frames(patients: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partition's tables with a fresh index, as the features/ functions take them."""
    return patients.reset_index(drop=True), events.reset_index(drop=True)


_TIMESTAMP = tuple(c for c in EVENT_COLUMNS if c.name == "timestamp")


def _latest_event(events: pd.DataFrame, column: str, partition_info=None) -> pd.DataFrame:
    # The partition's rows and latest event time as the contract reads the times (text in any zone included); a time
    # that cannot be read is left out here and reported by the partition's validation.
    parsed, _ = parse_table(events[[column]].set_axis(["timestamp"], axis=1).reset_index(drop=True), _TIMESTAMP,
                            "events")
    latest = parsed["timestamp"].max() if "timestamp" in parsed.columns else pd.NaT
    return pd.DataFrame({"rows": [len(events)], "latest": pd.Series([latest], dtype="datetime64[us, UTC]")})


def data_end_of(data_dir: str | Path, cohort: PartitionedCohort) -> pd.Timestamp:
    """End of observation: meta.json's data_end, else the latest event time, as the local engine reads it
    (`features.io.read_data_end` on the validated events), computed on the cluster."""
    stamp = meta_data_end(data_dir)
    if stamp is not None:
        return stamp
    meta = pd.DataFrame({"rows": pd.Series([], dtype="int64"), "latest": pd.Series([], dtype="datetime64[us, UTC]")})
    # One row per partition of the events as read, gathered in one pass.
    parts = cohort.events_read.map_partitions(_latest_event, cohort.declared.columns.timestamp, meta=meta).compute()
    rows, latest = parts["rows"].sum(), parts["latest"].max()
    if int(rows) == 0:
        raise ValueError(f"{data_dir}: no events and no meta.json with data_end, so the end of observation is unknown")
    if pd.isna(latest):
        raise ValueError(f"{data_dir}: no event time could be read, so the end of observation is unknown "
                         "(lapse validate names the rows)")
    return as_utc_instant(latest)
