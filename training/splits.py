"""Temporal, patient-grouped train / validation / test splits of a training table, by whole enrolment dates."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

from config import LapseError


class Split(NamedTuple):
    """Row positions of each part of a training table (no patient appears in two parts)."""

    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray


class SplitError(LapseError, ValueError):
    """The training table cannot be split into train, validation and test by enrolment date."""


def _latest_dates(per_date: np.ndarray, share: float) -> int:
    """How many of the latest dates (of patient counts `per_date`, oldest first) hold about `share` of the patients.

    Whole dates only: the count whose patient total is nearest to the share, at least one date.
    """
    n = per_date.sum()
    from_latest = np.cumsum(per_date[::-1])
    k = int(np.argmin(np.abs(from_latest - share * n))) + 1
    return max(k, 1)


def temporal_split(table: pd.DataFrame, test_fraction: float, validation_fraction: float) -> Split:
    """Split rows by enrolment date: the latest enrolment dates are test, the latest before them validation.

    Patients are grouped by the calendar date (UTC) of `enrolled_at`, and whole dates go to one part, so
    patients who enrolled on the same day (a cohort sharing a start date) are never split by their ids.
    The latest dates holding about `test_fraction` of the patients form the test set; of the earlier dates,
    the latest holding about `validation_fraction` of their patients form the validation set. All rows of a
    patient go to one part. SplitError when there are fewer than three enrolment dates.
    """
    for name, value in (("test_fraction", test_fraction), ("validation_fraction", validation_fraction)):
        if not 0.0 < value < 1.0:
            raise ValueError(f"{name} must be between 0 and 1, not {value}")
    missing = {"patient_id", "enrolled_at"} - set(table.columns)
    if missing:
        raise ValueError(f"training table lacks column(s) {', '.join(sorted(missing))}")
    patients = table[["patient_id", "enrolled_at"]].drop_duplicates("patient_id")
    if patients["enrolled_at"].isna().any():
        raise ValueError("training table has rows without enrolled_at")
    date = pd.to_datetime(patients["enrolled_at"], utc=True).dt.floor("D")
    dates, date_code = np.unique(date.to_numpy(), return_inverse=True)
    if len(dates) < 3:
        raise SplitError(f"{len(patients)} patients enrolled on {len(dates)} date(s): a temporal split needs at "
                         "least three enrolment dates (train, validation and test each take whole dates)")
    per_date = np.bincount(date_code, minlength=len(dates))
    n_test = min(_latest_dates(per_date, test_fraction), len(dates) - 2)
    n_val = min(_latest_dates(per_date[: len(dates) - n_test], validation_fraction), len(dates) - n_test - 1)
    date_part = np.zeros(len(dates), dtype=np.int8)
    date_part[len(dates) - n_test - n_val: len(dates) - n_test] = 1
    date_part[len(dates) - n_test:] = 2
    part_of = pd.Series(date_part[date_code], index=patients["patient_id"].to_numpy())
    row_part = part_of.reindex(table["patient_id"].to_numpy()).to_numpy()
    return Split(*(np.flatnonzero(row_part == k) for k in range(3)))
