"""External labels: a program whose dropout rule lives elsewhere gives lapse a `labels` table of outcomes.

`labels.parquet` (or `.csv`) in the data folder holds one row per labelled time: `patient_id`, `as_of` (a
time-zone-aware time) and `dropout` (1 or 0). When it is there, training builds features at each labelled time
and learns those outcomes instead of lapse's own label rule.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa

from features.contract import Column
from features.io import TableNotFound, find_table, read_raw_table
from features.validate import ContractError, Problem, errors_in, parse_table, read_failure

LABELS_TABLE = "labels"
LABEL_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", "string", required=True, description="must exist in patients"),
    Column("as_of", "timestamp", required=True, description="the labelled time, UTC"),
    Column("dropout", "integer", required=True, low=0, high=1, description="1 if the patient dropped out"),
)


def _rows_problem(source: str, column: str, rule: str, message: str, mask: np.ndarray) -> list[Problem]:
    if not mask.any():
        return []
    rows = np.flatnonzero(mask)
    return [Problem(source, column, rule, message, tuple(int(r) + 1 for r in rows[:5]), int(rows.size))]


def labels_file(data_dir: str | Path) -> Path | None:
    """The folder's labels table, or None when it has none."""
    try:
        return find_table(data_dir, LABELS_TABLE)
    except TableNotFound as exc:
        if "more than once" in str(exc):
            raise
        return None


def load_labels(data_dir: str | Path, patients: pd.DataFrame) -> pd.DataFrame | None:
    """The folder's external labels (patient_id, as_of, dropout as int64), None without a labels table.

    ContractError names the file, column and rows of every problem: a missing or unreadable column, an unknown
    patient, a time before the patient's enrolment, a (patient_id, as_of) labelled twice.
    """
    path = labels_file(data_dir)
    if path is None:
        return None
    source = str(path)
    try:
        raw = read_raw_table(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ContractError([Problem(source, None, "unreadable", read_failure(path, exc))]) from None
    frame, problems = parse_table(raw, LABEL_COLUMNS, source)
    problems = errors_in(problems)
    if not problems and len(frame) == 0:
        problems.append(Problem(source, None, "empty_table", "has no rows: nothing to train on"))
    if not problems:
        enrolled = patients.set_index("patient_id")["enrolled_at"]
        start = enrolled.reindex(frame["patient_id"].to_numpy())
        unknown = start.isna().to_numpy()
        problems += _rows_problem(source, "patient_id", "unknown_patient", "names a patient who is not in patients",
                                  unknown)
        early = ~unknown & (frame["as_of"].to_numpy() < start.to_numpy())
        problems += _rows_problem(source, "as_of", "before_enrolment", "is before the patient's enrolment", early)
        problems += _rows_problem(source, "as_of", "duplicate_label", "labels a (patient_id, as_of) more than once",
                                  frame.duplicated(["patient_id", "as_of"]).to_numpy())
    if problems:
        raise ContractError(problems)
    return pd.DataFrame({"patient_id": frame["patient_id"].array, "as_of": frame["as_of"].array,
                         "dropout": frame["dropout"].to_numpy(dtype=np.int64)})
