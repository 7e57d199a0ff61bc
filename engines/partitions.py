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

from config import ScaleOutConfig
from features.io import find_table, meta_data_end
from features.labels import as_utc_instant


class PartitionedCohort(NamedTuple):
    """Dask frames of patients and events, hash-shuffled alike on patient_id (partition i of each matches)."""

    patients: object
    events: object
    npartitions: int


def _text_ids(frame: pd.DataFrame) -> pd.DataFrame:
    # One dtype in both tables, so equal ids hash alike whatever the files stored.
    return frame.assign(patient_id=frame["patient_id"].astype("str"))


def _parquet(data_dir: Path, name: str) -> Path:
    path = find_table(data_dir, name)
    if path.suffix == ".csv":
        raise ValueError(f"{path}: the Dask engine reads Parquet only (a {name}.parquet file or {name}/ folder)")
    return path


def partition_frames(patients, events, n: int):
    """Both Dask frames moved so that partition i of each holds the same whole patients (and their events)."""
    out = []
    for frame in (patients, events):
        keyed = frame.map_partitions(_text_ids, meta=_text_ids(frame._meta))
        # A hash shuffle on patient_id sends a patient's rows of both tables to the same output partition.
        out.append(keyed.shuffle(on="patient_id", npartitions=n))
    return out


def read_partitioned(data_dir: str | Path, npartitions: int | None = None,
                     config: ScaleOutConfig = ScaleOutConfig()) -> PartitionedCohort:
    """Lazy patients and events of a data folder, partitioned by patient (sized from the events' Parquet metadata)."""
    import dask.dataframe as dd  # an optional extra (lapse[dask]): imported only when the Dask engine runs

    data_dir = Path(data_dir)
    p_path, e_path = _parquet(data_dir, "patients"), _parquet(data_dir, "events")
    if npartitions is None:
        n_events = sum(pq.ParquetFile(f).metadata.num_rows for f in _files(e_path))
        npartitions = max(1, math.ceil(n_events / config.events_per_partition))
    patients = dd.read_parquet(str(p_path))
    events = dd.read_parquet(str(e_path))
    for name, frame in (("patients", patients), ("events", events)):
        if "patient_id" not in frame.columns:
            raise ValueError(f"{data_dir}: the {name} table has no patient_id column")
    p, e = partition_frames(patients, events, npartitions)
    return PartitionedCohort(p, e, npartitions)


def _files(path: Path) -> list[Path]:
    return [path] if path.is_file() else sorted(path.rglob("*.parquet"))


def local_frames(patients: pd.DataFrame, events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One partition's tables with a fresh index, as the features/ functions take them."""
    return patients.reset_index(drop=True), events.reset_index(drop=True)


def data_end_of(data_dir: str | Path, events) -> pd.Timestamp:
    """End of observation: meta.json's data_end, else the latest event time (computed on the cluster)."""
    stamp = meta_data_end(data_dir)
    if stamp is not None:
        return stamp
    if int(events.shape[0].compute()) == 0:
        raise ValueError(f"{data_dir}: no events and no meta.json with data_end, so the end of observation is unknown")
    return as_utc_instant(events["timestamp"].max().compute())
