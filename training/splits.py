"""Temporal, patient-grouped train / validation / test splits of a training table."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd


class Split(NamedTuple):
    """Row positions of each part of a training table (no patient appears in two parts)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


def temporal_split(table: pd.DataFrame, test_fraction: float, validation_fraction: float) -> Split:
    """Split rows by patient: the latest-enrolled patients are test, the latest before them validation.

    Patients are ordered by `enrolled_at` (ties by `patient_id`); `test_fraction` of them,
    the most recent, form the test set; `validation_fraction` of the remaining, the most
    recent of those, form the validation set. All rows of a patient go to one part.
    """
    for name, value in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {value}")
    missing = {"patient_id", "enrolled_at"} - set(table.columns)
    if missing:
        raise ValueError(f"training table lacks column(s) {', '.join(sorted(missing))}")
    patients = (
        table[["patient_id", "enrolled_at"]]
        .drop_duplicates("patient_id")
        .sort_values(["enrolled_at", "patient_id"], kind="stable")
    )
    if patients["enrolled_at"].isna().any():
        raise ValueError("training table has rows without enrolled_at")
    n = len(patients)
    n_test = int(round(n * test_fraction))
    n_val = int(round((n - n_test) * validation_fraction))
    if min(n_test, n_val, n - n_test - n_val) < 1:
        raise ValueError(f"{n} patients are too few to split into train, validation and test")
    part = np.zeros(n, dtype=np.int8)
    part[n - n_test - n_val : n - n_test] = 1
    part[n - n_test :] = 2
    part_of = pd.Series(part, index=patients["patient_id"].to_numpy())
    row_part = part_of.reindex(table["patient_id"].to_numpy()).to_numpy()
    return Split(*(np.flatnonzero(row_part == k) for k in range(3)))
