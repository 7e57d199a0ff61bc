"""Baseline covariates of the patients table encoded as float64 model inputs (NaN where unknown)."""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from features.catalog import REFERRAL_SOURCES
from features.columns import OneRow, floats, optional_column
from features.contract import GAD7_ANXIETY_CUTOFF

# race_ethnicity is deliberately absent: it is kept for fairness audits, never a model input.
_INTERVENTION_FLAGS = {"human_support": "human_support", "gamification": "gamification",
                       "incentives": "incentives", "reminders_enabled": "reminders"}
_UNKNOWN = "unknown"
# pandas' nullable numbers: their values and a mask of the missing ones.
_NUMBERS = (pd.arrays.IntegerArray, pd.arrays.FloatingArray)
_SEXES = frozenset({"female", "male", "other"})
_EDUCATION = frozenset({"primary", "secondary", "tertiary"})
_ONE_ROW_CODES = np.zeros(1, dtype=np.int64)  # the codes of a one-row text column (read-only)
_ONE_ROW_CODES.flags.writeable = False
# The keys of `encode_covariates`, in its order: the rows of `covariate_block`.
COVARIATES: tuple[str, ...] = ("age", "male", "education_primary", "education_tertiary", "baseline_phq9",
                               "baseline_gad7", "comorbid_anxiety", *_INTERVENTION_FLAGS,
                               *(f"referral_{source}" for source in REFERRAL_SOURCES))


def _missing(n: int) -> np.ndarray:
    out = np.empty(n)
    out.fill(np.nan)
    return out


def _number(patients: pd.DataFrame | OneRow, name: str) -> np.ndarray:
    values = optional_column(patients, name)
    if values is None:
        return _missing(len(patients))
    if values.dtype.kind in "fiu":
        return floats(values)
    text = pd.Series(values, copy=False)  # numbers written as text: the rare case, read the pandas way
    return pd.to_numeric(text, errors="coerce").astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)


def _flag(patients: pd.DataFrame | OneRow, name: str) -> np.ndarray:
    values = optional_column(patients, name)
    if values is None:
        return _missing(len(patients))
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return values.astype(np.float64)
    flags = values.astype("boolean") if isinstance(values, ExtensionArray) else pd.array(values, dtype="boolean")
    return flags.to_numpy(dtype=np.float64, na_value=np.nan)


def _text(patients: pd.DataFrame | OneRow, name: str) -> tuple[np.ndarray, tuple[str, ...]] | None:
    """(code per row, distinct values trimmed and lower-cased); a missing value reads "unknown"."""
    if isinstance(patients, OneRow):
        if name not in patients.columns:
            return None
        values = patients.values(name)
    else:
        array = optional_column(patients, name)
        if array is None:
            return None
        # Only the strings matter below, and Arrow hands them over without pandas' detour through numpy.
        values = array.__arrow_array__().to_pylist() if hasattr(array, "__arrow_array__") else array.tolist()
    if len(values) == 1:  # one patient: one distinct value, code 0
        value = values[0]
        return _ONE_ROW_CODES, (value.strip().lower() if isinstance(value, str) else _UNKNOWN,)
    seen: dict[object, int] = {}
    codes = np.fromiter((seen.setdefault(v if isinstance(v, str) else None, len(seen)) for v in values),
                        dtype=np.int64, count=len(values))
    return codes, tuple(v.strip().lower() if isinstance(v, str) else _UNKNOWN for v in seen)


@lru_cache(maxsize=256)
def _category_values(words: tuple[str, ...], yes: str, known: frozenset[str] | None) -> np.ndarray:
    """Per distinct word: 1.0 for `yes`, 0.0 for another known word, NaN for unknown (read-only; the same
    few words come back call after call, so each set is worked out once)."""
    lookup = np.array([1.0 if w == yes else 0.0 if (w in known if known is not None else w != _UNKNOWN) else np.nan
                       for w in words], dtype=np.float64)
    lookup.flags.writeable = False
    return lookup


def _category(text: tuple[np.ndarray, tuple[str, ...]] | None, n: int, yes: str,
              known: frozenset[str] | None) -> np.ndarray:
    """1.0 where the text is `yes`, 0.0 for another known value, NaN for unknown (any value but
    "unknown" counts as known when `known` is None)."""
    if text is None:
        return _missing(n)
    codes, words = text
    return _category_values(words, yes, known)[codes] if len(codes) else _missing(0)


def encode_covariates(patients: pd.DataFrame | OneRow) -> dict[str, np.ndarray]:
    """One float64 array per baseline feature, aligned to the rows of `patients` (a table, or one patient's
    values as a `OneRow`)."""
    n = len(patients)
    sex = _text(patients, "sex")
    education = _text(patients, "education")
    referral = _text(patients, "referral_source")
    gad7 = _number(patients, "baseline_gad7")
    with np.errstate(invalid="ignore"):
        anxiety = np.where(np.isnan(gad7), np.nan, (gad7 >= GAD7_ANXIETY_CUTOFF).astype(np.float64))
    out = {
        "age": _number(patients, "age"),
        "male": _category(sex, n, "male", _SEXES),
        "education_primary": _category(education, n, "primary", _EDUCATION),
        "education_tertiary": _category(education, n, "tertiary", _EDUCATION),
        "baseline_phq9": _number(patients, "baseline_phq9"),
        "baseline_gad7": gad7,
        "comorbid_anxiety": anxiety,
    }
    for name, flag in _INTERVENTION_FLAGS.items():
        out[name] = _flag(patients, flag)
    for source in REFERRAL_SOURCES:
        out[f"referral_{source}"] = _category(referral, n, source, None)
    return out


def covariate_block(patients: pd.DataFrame | OneRow) -> np.ndarray:
    """`encode_covariates` as one float64 block, a row per covariate (`COVARIATES` order) and a column per patient
    (a row of `patients`).

    One patient in a table (serving's case, and the one-patient benchmark) goes value by value in Python: each
    covariate there is one number, and numpy's per-call cost, paid some thirty times, was most of the covariates'
    cost. Same numbers: the same conversions of the same stored values (tests/features check it over many
    dtypes and missing values)."""
    n = len(patients)
    if n == 1 and isinstance(patients, pd.DataFrame):
        return _one_row_block(patients)
    values = encode_covariates(patients)
    return np.concatenate(list(values.values()), dtype=np.float64).reshape(len(values), n)


def _one_row_block(patients: pd.DataFrame) -> np.ndarray:
    """`covariate_block` of a one-row table, from Python floats."""
    sex = _one_word(patients, "sex")
    education = _one_word(patients, "education")
    referral = _one_word(patients, "referral_source")
    gad7 = _one_number(patients, "baseline_gad7")
    # As encode_covariates: NaN when unknown, else whether at or above the cut-off.
    anxiety = math.nan if math.isnan(gad7) else float(gad7 >= GAD7_ANXIETY_CUTOFF)
    out = [_one_number(patients, "age"), _word_value(sex, "male", _SEXES),
           _word_value(education, "primary", _EDUCATION), _word_value(education, "tertiary", _EDUCATION),
           _one_number(patients, "baseline_phq9"), gad7, anxiety]
    out += [_one_flag(patients, flag) for flag in _INTERVENTION_FLAGS.values()]
    out += [_word_value(referral, source, None) for source in REFERRAL_SOURCES]
    return np.array(out, dtype=np.float64).reshape(len(out), 1)


def _one_number(patients: pd.DataFrame, name: str) -> float:
    """`_number(patients, name)[0]` of a one-row table: numpy numbers and pandas' nullable ones read directly,
    anything else (text, Arrow numbers) the array way."""
    values = optional_column(patients, name)
    if values is None:
        return math.nan
    if isinstance(values, np.ndarray):
        if values.dtype.kind in "fiu":
            return float(values[0])  # what astype(float64) gives: exact, or correctly rounded for wide integers
    elif isinstance(values, _NUMBERS):
        return math.nan if values._mask[0] else float(values._data[0])  # as `floats`
    return float(_number(patients, name)[0])


def _one_flag(patients: pd.DataFrame, name: str) -> float:
    """`_flag(patients, name)[0]` of a one-row table: a numpy bool read directly, anything else the array way."""
    values = optional_column(patients, name)
    if values is None:
        return math.nan
    if isinstance(values, np.ndarray) and values.dtype == bool:
        return 1.0 if values[0] else 0.0
    return float(_flag(patients, name)[0])


def _one_word(patients: pd.DataFrame, name: str) -> str | None:
    """The one patient's text of column `name` trimmed and lower-cased ("unknown" if missing); None without
    the column."""
    text = _text(patients, name)
    return None if text is None else text[1][0]


@lru_cache(maxsize=256)
def _word_value(word: str | None, yes: str, known: frozenset[str] | None) -> float:
    """`_category` of one patient's word (None: no such column), as a Python float."""
    if word is None:
        return math.nan
    return float(_category_values((word,), yes, known)[0])


def age_band_labels(edges: tuple[int, ...]) -> list[str]:
    """Band names for the lower edges: (18, 25) gives ['<18', '18-24', '25+']."""
    edges = tuple(sorted(edges))
    return [f"<{edges[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]


def age_band(age: pd.Series, edges: tuple[int, ...], missing: str = _UNKNOWN) -> pd.Series:
    """The age band of every age (see `age_band_labels`); a missing or unreadable age reads `missing`."""
    values = pd.to_numeric(age, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    labels = np.asarray(age_band_labels(edges), dtype=object)
    out = labels[np.searchsorted(np.asarray(sorted(edges), dtype=np.float64), values, side="right")]
    out[np.isnan(values)] = missing
    return pd.Series(out, index=age.index, dtype="str")


def subgroup_frame(patients: pd.DataFrame, attributes: tuple[str, ...], age_edges: tuple[int, ...],
                   missing: str = _UNKNOWN) -> pd.DataFrame:
    """patient_id plus one text column per attribute the patients table supports (others are left out).

    `age_band` is the band of `age`; booleans read "yes"/"no"; other columns their text; a missing
    value reads `missing`. The training metrics, the promotion gate and the engagement report all
    group patients with this one function.
    """
    out = pd.DataFrame({"patient_id": patients["patient_id"].astype("str").to_numpy()})
    for attribute in attributes:
        if attribute == "age_band":
            if "age" in patients.columns:
                out[attribute] = age_band(patients["age"], age_edges, missing).to_numpy()
            continue
        if attribute not in patients.columns:
            continue
        column = patients[attribute]
        if pd.api.types.is_bool_dtype(column):
            text = column.map({True: "yes", False: "no"})
        else:
            text = column.astype("str")
        out[attribute] = pd.Series(text.where(column.notna(), missing).to_numpy(), dtype="str")
    return out
