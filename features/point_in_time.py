"""Features of each patient as of a prediction time, from events at or before that time only.

Every value of a row depends only on that patient's events at or before the row's as-of
time, computed with integer arithmetic or a fixed summation order. One code path for
training, serving and batch: every row goes through the same array expressions
(features/usage.py), a single patient too.

Two entry points: `compute_features` (tables in, table out) and `compute_features_one`
(one patient's events as numpy arrays in, one feature vector out), for callers that hold
arrays already and want to skip the text encoding of the tables.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import lru_cache
from itertools import repeat
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray
from pandas.api.internals import create_dataframe_from_blocks

from config import FeatureConfig
from features.catalog import FEATURES, FeatureSpec, build_features
from features.columns import OneRow, column, floats, optional_column
from features.covariates import COVARIATES, covariate_block
from features.event_index import (NAT, TYPE_CODES, encode, indexed_chunks, micros, moment_micros, text_array,
                                  type_codes)
from features.usage import usage_features, window_days
from features.vocabulary import Vocabulary, vocabulary


def specs_for(config: FeatureConfig) -> tuple[FeatureSpec, ...]:
    """The catalog entries (column order) that `compute_features` returns under `config`."""
    return _layout(config).specs


_COVARIATE_ROW = {name: row for row, name in enumerate(COVARIATES)}  # rows of the covariate block
_PHQ9, _GAD7 = _COVARIATE_ROW["baseline_phq9"], _COVARIATE_ROW["baseline_gad7"]


class _Layout(NamedTuple):
    """What the feature code needs of one configuration, worked out once per configuration."""

    specs: tuple[FeatureSpec, ...]
    names: tuple[str, ...]
    columns: pd.Index  # patient_id, as_of, then the features
    vocabulary: Vocabulary
    type_code: Mapping[str, int]  # event type name -> code
    days: tuple[int, ...]  # the look-back windows of usage_features
    pieces: tuple[str | slice, ...]  # `names` in order: a usage feature's name, or a run of covariate block rows
    placements: tuple[np.ndarray, np.ndarray, np.ndarray]  # the output frame's blocks' columns (read-only)


# The last configuration asked for and its layout: callers pass the same object call after call (a served model's
# settings, the default), and comparing identities spares hashing the settings, which costs more than a feature.
_last_layout: tuple[FeatureConfig, _Layout] | None = None


def _layout(config: FeatureConfig) -> _Layout:
    global _last_layout
    last = _last_layout
    if last is not None and last[0] is config:
        return last[1]
    try:
        layout = _cached_layout(config)
    except TypeError:  # a configuration holding a list cannot be a cache key: work it out each time
        return _cached_layout.__wrapped__(config)
    _last_layout = (config, layout)
    return layout


@lru_cache(maxsize=16)
def _cached_layout(config: FeatureConfig) -> _Layout:
    specs = FEATURES if config == FeatureConfig() else build_features(config)
    names = tuple(s.name for s in specs)
    vocab = vocabulary(config.events)
    placements = (np.array([0]), np.array([1]), np.arange(2, 2 + len(names)))
    for placement in placements:
        placement.flags.writeable = False
    return _Layout(specs, names, pd.Index(["patient_id", "as_of", *names]), vocab,
                   TYPE_CODES if not config.events.types else vocab.codes, window_days(config), _pieces(names),
                   placements)


def _pieces(names: tuple[str, ...]) -> tuple[str | slice, ...]:
    """`names` as the pieces `_matrix` concatenates: each usage feature by name, and each run of covariates that
    follow one another in `COVARIATES` as one slice of the covariate block's rows (all of them, usually)."""
    pieces: list[str | slice] = []
    for name in names:
        row = _COVARIATE_ROW.get(name)
        last = pieces[-1] if pieces else None
        if row is None:
            pieces.append(name)
        elif isinstance(last, slice) and last.stop == row:
            pieces[-1] = slice(last.start, row + 1)
        else:
            pieces.append(slice(row, row + 1))
    return tuple(pieces)


def _require(frame: pd.DataFrame, what: str, columns: tuple[str, ...]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} is missing column(s): {', '.join(missing)}")


def _matrix(layout: _Layout, baseline: np.ndarray, enrolled: np.ndarray, row_codes: np.ndarray,
            T: np.ndarray, ev_codes: np.ndarray, ev_times: np.ndarray, ev_types: np.ndarray, ev_values: np.ndarray,
            n_patients: int, config: FeatureConfig) -> np.ndarray:
    """Every feature (rows, catalog order) of every query row (columns): patient code and time T.

    `baseline` is the covariates as one block (`covariate_block`: a row each, a column per patient), so that a
    chunk's rows are one look-up, not one per covariate."""
    matrix = None
    vocab = layout.vocabulary
    for lo, hi, rows, ix in indexed_chunks(row_codes, ev_codes, ev_times, ev_types, ev_values, n_patients,
                                           names=vocab.names, own_codes=vocab.own):
        codes = row_codes[rows]
        usage = usage_features(ix, codes - lo, T[rows], enrolled[lo:hi], baseline[_PHQ9, lo:hi],
                               baseline[_GAD7, lo:hi], config, layout.days)
        # One concatenation of the features' values, in catalog order, is the block (a row per feature): a run of
        # covariates goes in as their block's rows, flattened (row after row, as the block's layout has them).
        block = np.concatenate([usage[piece] if isinstance(piece, str) else baseline[piece, codes].ravel()
                                for piece in layout.pieces], dtype=np.float64).reshape(len(layout.names), len(codes))
        if isinstance(rows, slice):  # one range of patients holds every row: the block is the matrix
            return block
        if matrix is None:
            matrix = np.empty((len(layout.names), len(row_codes)), dtype=np.float64)
        matrix[:, rows] = block
    return matrix


def _key_block(values: np.ndarray | ExtensionArray) -> np.ndarray | ExtensionArray:
    """A key column as a block of the result frame: a copy, 2-D when numpy-backed (pandas' block layout)."""
    if isinstance(values, np.ndarray):
        return np.array(values, copy=True).reshape(1, -1)
    return values.copy()


def compute_features(patients: pd.DataFrame, events: pd.DataFrame, as_of: pd.DataFrame,
                     config: FeatureConfig = FeatureConfig()) -> pd.DataFrame:
    """Features per (patient_id, as_of) row from events at or before as_of, in catalog column order."""
    try:  # the required columns read first: a missing one fails its look-up, and only then is each table checked
        ids, enrolled_at = column(patients, "patient_id"), column(patients, "enrolled_at")
        ev_ids, ev_timestamps, ev_names = (column(events, "patient_id"), column(events, "timestamp"),
                                           column(events, "event_type"))
        row_ids, row_times = column(as_of, "patient_id"), column(as_of, "as_of")
    except (KeyError, ValueError):
        _require(patients, "patients", ("patient_id", "enrolled_at"))
        _require(events, "events", ("patient_id", "timestamp", "event_type"))
        _require(as_of, "as_of", ("patient_id", "as_of"))
        raise
    layout = _layout(config)
    if len(ids) > 1 and len(pd.unique(ids)) < len(ids):
        first_repeat = int(np.argmax(pd.Index(ids).duplicated()))
        raise ValueError(f"patients: patient_id is not unique (first repeat at row {first_repeat})")
    universe = text_array(ids)  # converted once for both look-ups
    row_codes = encode(row_ids, universe)
    if (row_codes < 0).any():
        raise ValueError(f"as_of row {int(np.argmax(row_codes < 0))}: patient_id is not in the patients table")
    T = micros(row_times, "as_of.as_of")
    enrolled = micros(enrolled_at, "patients.enrolled_at")
    ev_codes = encode(ev_ids, universe)
    ev_times = micros(ev_timestamps, "events.timestamp")
    ev_types = type_codes(ev_names, layout.vocabulary.names)
    ev_value = optional_column(events, "value")
    ev_values = np.full(len(events), np.nan) if ev_value is None else floats(ev_value)
    covariates = covariate_block(patients)
    matrix = _matrix(layout, covariates, enrolled, row_codes, T, ev_codes, ev_times, ev_types, ev_values,
                     len(universe), config)
    # The matrix is already in pandas' block layout (one row per column): no copy, no concat.
    ids_at, times_at, matrix_at = layout.placements
    blocks = [(_key_block(row_ids), ids_at), (_key_block(row_times), times_at), (matrix, matrix_at)]
    return create_dataframe_from_blocks(blocks, index=as_of.index, columns=layout.columns)


def compute_features_one(patient: pd.DataFrame | Mapping[str, object], times_us: np.ndarray,
                         event_types: Sequence[str] | np.ndarray, values: np.ndarray, as_of_us: int,
                         config: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """One patient's features at one time (float64, catalog order) from their events as arrays.

    `patient` is a one-row patients table (`enrolled_at` and whichever baseline columns are known), or the
    same row as a mapping of column name to value (`enrolled_at` a timezone-aware time; an absent column
    or None is not known), which spares building a DataFrame for one patient;
    `times_us` the event times as int64 microseconds since the epoch (UTC), in any order;
    `event_types` their type names (str or EventType) or codes (positions in EventType, then the declared
    types of `config.events`), a type outside the vocabulary being ignored as in `compute_features`; `values` float64, NaN where none;
    `as_of_us` the prediction time in microseconds since the epoch. Equal to the row
    `compute_features` gives for the same inputs. Validation (the data contract) is the caller's:
    check the tables first.
    """
    if isinstance(patient, pd.DataFrame):
        if len(patient) != 1:
            raise ValueError(f"compute_features_one needs a one-row patients table (got {len(patient)} rows)")
        _require(patient, "patient", ("enrolled_at",))
        enrolled = int(micros(column(patient, "enrolled_at"), "patient.enrolled_at")[0])
        row: pd.DataFrame | OneRow = patient
    else:
        if patient.get("enrolled_at") is None:
            raise ValueError("patient is missing column(s): enrolled_at")
        enrolled = moment_micros(patient["enrolled_at"], "patient.enrolled_at")
        row = OneRow(patient)
    layout = _layout(config)
    times = np.asarray(times_us, dtype=np.int64)
    values = np.asarray(values, dtype=np.float64)
    types = np.asarray(event_types)
    type_code = layout.type_code
    if types.dtype.kind not in "iu":  # names: a dict look-up beats Arrow on a few hundred short strings
        types = np.fromiter(map(type_code.get, types.tolist(), repeat(-1)), dtype=np.int8, count=len(types))
    elif len(types) and (types.min() < 0 or types.max() >= len(type_code)):
        types = np.where((types >= 0) & (types < len(type_code)), types, -1)
    if not len(times) == len(types) == len(values):
        raise ValueError(f"times_us, event_types and values differ in length "
                         f"({len(times)}, {len(types)}, {len(values)})")
    if (times == NAT).any():
        raise ValueError(f"times_us has a missing time at position {int(np.argmax(times == NAT))}")
    if len(times) > 1 and not (times[1:] >= times[:-1]).all():  # events usually come in time order already
        order = times.argsort(kind="stable")
        times, types, values = times[order], types[order], values[order]
    return _matrix(layout, covariate_block(row), np.array([enrolled]), np.zeros(1, dtype=np.int64),
                   np.array([int(as_of_us)]), np.zeros(len(times), dtype=np.int64), times, types, values, 1,
                   config)[:, 0]
