"""The labelled training table as `lapse features` writes it and `lapse train` reads it: one builder, one record.

The table carries the label and feature settings it was built with (in the Parquet metadata, as pandas
`attrs`), so `lapse train --features FILE` can refuse a table built with other settings.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cli.progress import Step
from config import LapseError, LapseSettings
from features.io import RECORD, table_settings


class TableMismatch(LapseError):
    """A features table was built with other settings (or another data folder) than this run's."""


def build_training_table(data_dir: Path, settings: LapseSettings, step: Step):
    """Validate the folder and build its training table with these settings; returns (cohort, data_end, table)."""
    from features.external_labels import load_labels
    from features.io import read_data_end
    from features.snapshots import training_table
    from features.validate import load_cohort

    step("reading and validating the tables")
    cohort = load_cohort(data_dir, declared=settings.events)
    data_end = read_data_end(data_dir, cohort.events)
    labels = load_labels(data_dir, cohort.patients)
    step("building point-in-time features at the labelled times" if labels is not None
         else "building point-in-time features and labels")
    table = training_table(cohort.patients, cohort.events, data_end, feature_config=settings.features,
                           label_config=settings.labels, calendar=settings.features.calendar, labels=labels)
    table.attrs[RECORD] = table_settings(settings, data_end)
    return cohort, data_end, table


def read_training_table(path: Path, settings: LapseSettings, data_end: pd.Timestamp) -> pd.DataFrame:
    """A table `lapse features` wrote, refused unless it was built with these settings and this data_end.

    The table is a Parquet file, or (`lapse features --engine dask`) a folder of them."""
    if not path.exists():
        raise TableMismatch(f"{path}: no such features table (write it with `lapse features --out {path}`)")
    try:
        table = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise TableMismatch(f"{path}: could not be read as Parquet ({type(exc).__name__})") from None
    recorded = table.attrs.get(RECORD)
    if not isinstance(recorded, dict):
        raise TableMismatch(f"{path}: carries no record of its settings: write it with `lapse features`")
    wanted = table_settings(settings, data_end)
    differ = [f"{name}: table {recorded_value!r}, now {wanted_value!r}"
              for name, recorded_value, wanted_value in _flat_diff(recorded, wanted)]
    if differ:
        raise TableMismatch(f"{path}: built with other settings than this run; rebuild it with `lapse features` "
                            "or use the same settings:\n  " + "\n  ".join(differ))
    return table


def _flat_diff(old: dict, new: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _flat_diff(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append((f"{prefix}{key}", a, b))
    return out
