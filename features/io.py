"""Reading and writing contract tables as Parquet or CSV files, atomically."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from features.atomic import atomic_path
from config import LapseError, LapseSettings

SUFFIXES = (".parquet", ".csv")


class TableNotFound(LapseError, FileNotFoundError):
    """A contract table is missing from a data folder."""


def find_table(data_dir: str | Path, name: str) -> Path:
    """Return the file (or Parquet dataset folder) that holds table `name` in `data_dir`."""
    data_dir = Path(data_dir)
    candidates = [data_dir / f"{name}{s}" for s in SUFFIXES] + [data_dir / name]
    found = [p for p in candidates if p.exists()]
    if not found:
        raise TableNotFound(
            f"{data_dir}: no '{name}' table (expected {name}.parquet, {name}.csv or a {name}/ Parquet folder)"
        )
    if len(found) > 1:
        raise TableNotFound(f"{data_dir}: '{name}' is given more than once: {', '.join(p.name for p in found)}")
    return found[0]


def read_raw_table(path: Path) -> pd.DataFrame:
    """Read a table as stored: CSV columns as text (parsing is the contract's job), Parquet as typed."""
    if path.suffix == ".csv":
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    return pd.read_parquet(path)


# The key of a training table's record of its settings (in its Parquet metadata, as pandas `attrs`).
RECORD = "lapse"


def table_settings(settings: LapseSettings, data_end: pd.Timestamp) -> dict:
    """What a training table depends on besides the data, as JSON values: the label and feature settings and
    data_end. `lapse features` records it with the table (on either engine); `lapse train --features` compares."""
    return json.loads(json.dumps({"labels": settings.labels.model_dump(mode="json"),
                                  "features": settings.features.model_dump(mode="json"),
                                  "data_end": data_end.isoformat()}))


def write_table(frame: pd.DataFrame, out_dir: str | Path, name: str) -> Path:
    """Write `frame` to `out_dir/name.parquet` so a failed write never leaves a partial file."""
    target = Path(out_dir) / f"{name}.parquet"
    with atomic_path(target) as tmp:
        frame.to_parquet(tmp, index=False)
    return target


META_FILE = "meta.json"
# Optional, simulated data only: the simulator's true dropout probability of each (patient, as-of day),
# per label definition and horizon. Training joins it to its rows for the "ceiling" metric.
TRUE_PROBABILITY_TABLE = "true_probability"
TRUE_PROBABILITY_COLUMNS = ("patient_id", "as_of_day", "definition", "horizon_days", "probability")


def meta_data_end(data_dir: str | Path) -> pd.Timestamp | None:
    """data_end from the folder's meta.json as a UTC Timestamp; None when there is no meta.json or no data_end."""
    path = Path(data_dir) / META_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: could not be read as JSON ({type(exc).__name__})") from None
    if not isinstance(raw, dict) or "data_end" not in raw:
        return None
    try:
        stamp = pd.Timestamp(raw["data_end"])
    except (TypeError, ValueError):
        raise ValueError(f"{path}: field 'data_end' is not an ISO 8601 time") from None
    if stamp.tzinfo is None:
        raise ValueError(f"{path}: field 'data_end' must carry a time zone (e.g. 2026-01-01T00:00:00Z)")
    return stamp.tz_convert("UTC")


def read_data_end(data_dir: str | Path, events: pd.DataFrame) -> pd.Timestamp:
    """End of observation: meta.json's data_end when the folder has one, else the latest event time."""
    stamp = meta_data_end(data_dir)
    if stamp is not None:
        return stamp
    if len(events) == 0:
        raise ValueError(f"{data_dir}: no events and no {META_FILE} with data_end, so the end of observation is unknown")
    return events["timestamp"].max()
