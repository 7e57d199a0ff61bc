"""Turning raw table columns (CSV text or Parquet types) into the contract's canonical types.

Every parser returns the canonical values plus boolean masks saying which rows were
missing and which held something that could not be read, so the caller can report
row numbers without ever looking at (or echoing) the values themselves. Values stay
as Arrow or numpy arrays until `to_series`, which keeps checks on small frames cheap.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

# Cells holding one of these (case-insensitive, after trimming spaces) count as empty
# in timestamp, number, boolean and category columns: R, Excel and SQL exports write them.
MISSING_MARKERS = ("", "na", "n/a", "nan", "null", "none")
TRUE_WORDS = ("true", "1", "yes")
FALSE_WORDS = ("false", "0", "no")
TIMESTAMP_DTYPE = "datetime64[us, UTC]"
_US = "datetime64[us]"
_ARROW_UTC = pa.timestamp("us", tz="UTC")
_MISSING = pa.array(MISSING_MARKERS)
_TRUE = pa.array(TRUE_WORDS)
_FALSE = pa.array(FALSE_WORDS)
# A time of day followed by "Z" or a numeric UTC offset (+02:00, -0500, +01) at the very end.
_OFFSET_AT_END = r"\d:\d\d(?::\d\d(?:[.,]\d+)?)?\s*(?:[zZ]|[+-]\d\d(?::?\d\d)?)$"


class Parsed(NamedTuple):
    """One parsed column: canonical values and per-row masks (numpy bool arrays).

    values: pa.Array of strings (text, category; null where missing or invalid),
    numpy datetime64[us] in UTC (timestamp; NaT where unusable), numpy float64
    (number; NaN where unusable) or numpy bool (boolean; False where unusable).
    """

    kind: str
    values: object
    missing: np.ndarray
    invalid: np.ndarray
    # Timestamps only: rows that parsed but carried no time zone or offset.
    naive: np.ndarray | None = None
    # Categories only: index of each row's value in the vocabulary, -1 where none.
    codes: np.ndarray | None = None
    # Categories only: each distinct value outside the vocabulary (trimmed, lower case, as it
    # was compared) with its row count, most rows first. The caller decides which are safe to show.
    unknown: tuple[tuple[str, int], ...] = ()


def _none(n: int) -> np.ndarray:
    return np.zeros(n, dtype=bool)


def _bools(arr: pa.Array) -> np.ndarray:
    """An Arrow boolean array as numpy, null counted as False."""
    return pc.fill_null(arr, False).to_numpy(zero_copy_only=False)


def as_codes(arr: pa.Array) -> np.ndarray:
    """An Arrow integer array as numpy int64, null as -1."""
    return pc.fill_null(arr, -1).to_numpy(zero_copy_only=False).astype(np.int64, copy=False)


def spread(flags: np.ndarray, codes: np.ndarray, fill) -> np.ndarray:
    """Per-distinct-value entries spread back to rows; rows with code -1 get `fill`."""
    return np.append(flags, np.asarray(fill, dtype=flags.dtype))[codes]


def arrow_text(raw: pd.Series) -> pa.Array:
    """A column as an Arrow string array (null where missing); whole floats lose their '.0'."""
    dtype = raw.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = raw.cat.codes.to_numpy()
        return arrow_text(pd.Series(dtype.categories)).take(pa.array(codes, mask=codes < 0))
    if pd.api.types.is_float_dtype(dtype):
        present = raw.dropna().to_numpy(dtype="float64")
        if len(present) and bool(np.all(np.mod(present, 1) == 0)):
            raw = raw.astype("Int64")
    if not (isinstance(raw.dtype, pd.StringDtype) and raw.dtype.storage == "pyarrow"):
        raw = raw.astype("str")
    arr = pa.array(raw.array)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return arr


def _encode(raw: pd.Series) -> tuple[pa.Array, np.ndarray, pa.Array, bool]:
    """The column as Arrow text, row codes (-1 for missing), the distinct values trimmed,
    and whether trimming changed any of them."""
    text = arrow_text(raw)
    enc = pc.dictionary_encode(text)
    trimmed = pc.utf8_trim_whitespace(enc.dictionary)
    return text, as_codes(enc.indices), trimmed, not trimmed.equals(enc.dictionary)


def parse_text(raw: pd.Series) -> Parsed:
    """Identifiers and free text: trimmed, empty cells missing (no markers: an id may be 'NA')."""
    text, codes, uniq, changed = _encode(raw)
    empty = pc.equal(uniq, "")
    empty_u = _bools(empty)
    if changed or empty_u.any():
        text = pc.if_else(empty, pa.scalar(None, uniq.type), uniq).take(pa.array(codes, mask=codes < 0))
    return Parsed("text", text, spread(empty_u, codes, True), _none(len(raw)))


def parse_category(raw: pd.Series, categories: tuple[str, ...]) -> Parsed:
    """A fixed vocabulary, matched ignoring case and surrounding spaces; values are lower case."""
    text, codes, uniq, changed = _encode(raw)
    vocab = pa.array([str(c) for c in categories])
    lowered = pc.utf8_lower(uniq)
    missing_u = _bools(pc.is_in(lowered, value_set=_MISSING))
    code_u = as_codes(pc.index_in(lowered, value_set=vocab))
    code_u[missing_u] = -1
    invalid_u = ~missing_u & (code_u < 0)
    row_codes = spread(code_u, codes, -1)
    unknown: tuple[tuple[str, int], ...] = ()
    if invalid_u.any():
        per_value = np.bincount(codes[codes >= 0], minlength=len(uniq))
        unknown = _counted(lowered, per_value, invalid_u)
    if changed or missing_u.any() or invalid_u.any() or not lowered.equals(uniq):
        text = vocab.take(pa.array(row_codes, mask=row_codes < 0))
    return Parsed("category", text, spread(missing_u, codes, True), spread(invalid_u, codes, False),
                  codes=row_codes, unknown=unknown)


def _counted(uniq: pa.Array, per_value: np.ndarray, keep: np.ndarray) -> tuple[tuple[str, int], ...]:
    """The kept distinct values with their row counts (values that became the same text merged),
    most rows first, then by text."""
    totals: dict[str, int] = {}
    for i in np.flatnonzero(keep):
        name = uniq[int(i)].as_py()
        totals[name] = totals.get(name, 0) + int(per_value[i])
    return tuple(sorted(totals.items(), key=lambda item: (-item[1], item[0])))


def parse_number(raw: pd.Series) -> Parsed:
    """Finite numbers as float64; text that is not a number is invalid."""
    n = len(raw)
    if pd.api.types.is_bool_dtype(raw.dtype):
        missing = raw.isna().to_numpy(dtype=bool)
        return Parsed("number", np.full(n, np.nan), missing, ~missing)
    if pd.api.types.is_numeric_dtype(raw.dtype):
        values = raw.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(values)
    else:
        text = arrow_text(raw)
        try:
            values = text.cast(pa.float64()).to_numpy(zero_copy_only=False)
            missing = np.isnan(values)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            trimmed = pc.utf8_trim_whitespace(text)
            missing = _bools(pc.is_in(pc.utf8_lower(trimmed), value_set=_MISSING)) | _bools(pc.is_null(trimmed))
            series = pd.Series(pd.array(trimmed, dtype="str"))
            values = pd.to_numeric(series.mask(missing), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    invalid = ~missing & ~np.isfinite(values)
    if invalid.any():
        values = np.where(invalid, np.nan, values)
    return Parsed("number", values, missing, invalid)


def parse_boolean(raw: pd.Series) -> Parsed:
    """True/false from booleans, 0/1 numbers or the words true/false, 1/0, yes/no (any case)."""
    n = len(raw)
    if pd.api.types.is_bool_dtype(raw.dtype):
        missing = raw.isna().to_numpy(dtype=bool)
        truth = raw.to_numpy(dtype=bool, na_value=False)
        invalid = _none(n)
    elif pd.api.types.is_numeric_dtype(raw.dtype):
        arr = raw.to_numpy(dtype="float64", na_value=np.nan)
        missing = np.isnan(arr)
        truth = arr == 1
        invalid = ~missing & ~truth & (arr != 0)
    else:
        _, codes, uniq, _ = _encode(raw)
        lowered = pc.utf8_lower(uniq)
        missing_u = _bools(pc.is_in(lowered, value_set=_MISSING))
        truth_u = _bools(pc.is_in(lowered, value_set=_TRUE))
        invalid_u = ~missing_u & ~truth_u & ~_bools(pc.is_in(lowered, value_set=_FALSE))
        missing = spread(missing_u, codes, True)
        truth = spread(truth_u, codes, False)
        invalid = spread(invalid_u, codes, False)
    return Parsed("boolean", truth & ~invalid, missing, invalid)


def parse_timestamp(raw: pd.Series) -> Parsed:
    """UTC timestamps from tz-aware datetimes or ISO-8601 text with 'Z' or an offset; naive is flagged."""
    n = len(raw)
    dtype = raw.dtype
    if isinstance(dtype, pd.DatetimeTZDtype):
        # The underlying numbers are UTC instants whatever the zone shown.
        values = raw.to_numpy(dtype=f"datetime64[{dtype.unit}]").astype(_US, copy=False)
        return Parsed("timestamp", values, np.isnat(values), _none(n), _none(n))
    if pd.api.types.is_datetime64_dtype(dtype):
        # Stored without a time zone: the instant is unknown, so every present row is naive.
        missing = raw.isna().to_numpy(dtype=bool)
        return Parsed("timestamp", np.full(n, np.datetime64("NaT", "us")), missing, _none(n), ~missing)
    if dtype == object and pd.api.types.infer_dtype(raw, skipna=True) not in ("string", "empty"):
        return _parse_python_datetimes(raw)
    if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(dtype):
        # Numbers (epoch seconds? milliseconds?) are ambiguous: refuse rather than guess.
        missing = raw.isna().to_numpy(dtype=bool)
        return Parsed("timestamp", np.full(n, np.datetime64("NaT", "us")), missing, ~missing, _none(n))
    text = arrow_text(raw)
    try:
        # Arrow refuses strings without an offset here, so success means every row is aware.
        micros = pc.fill_null(text.cast(_ARROW_UTC).cast(pa.int64()), np.iinfo(np.int64).min)
        values = micros.to_numpy(zero_copy_only=False).view(_US)
        return Parsed("timestamp", values, np.isnat(values), _none(n), _none(n))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _parse_timestamp_text(text)


def _parse_timestamp_text(text: pa.Array) -> Parsed:
    """The slow path for text that Arrow could not read at once: finds which rows are bad and why."""
    trimmed = pc.utf8_trim_whitespace(text)
    missing = _bools(pc.is_in(pc.utf8_lower(trimmed), value_set=_MISSING)) | _bools(pc.is_null(trimmed))
    present = pd.Series(pd.array(trimmed, dtype="str")).mask(missing)
    parsed = pd.to_datetime(present, format="ISO8601", utc=True, errors="coerce")
    values = parsed.to_numpy(dtype=f"datetime64[{parsed.dt.unit}]").astype(_US)
    invalid = ~missing & np.isnat(values)
    has_offset = _bools(pc.match_substring_regex(trimmed, _OFFSET_AT_END))
    naive = ~missing & ~invalid & ~has_offset
    values[naive] = np.datetime64("NaT", "us")
    return Parsed("timestamp", values, missing, invalid, naive)


def _parse_python_datetimes(raw: pd.Series) -> Parsed:
    """Object columns of datetime objects (in-memory frames only): per element, small frames."""
    n = len(raw)
    missing = raw.isna().to_numpy(dtype=bool)
    values = np.full(n, np.datetime64("NaT", "us"))
    invalid, naive = _none(n), _none(n)
    for i, v in enumerate(raw.to_numpy()):
        if missing[i]:
            continue
        if isinstance(v, str):
            one = parse_timestamp(pd.Series([v], dtype="str"))
            invalid[i], naive[i], values[i] = one.invalid[0], one.naive[0], one.values[0]
            continue
        try:
            ts = pd.Timestamp(v)
        except (TypeError, ValueError):
            invalid[i] = True
            continue
        if ts.tzinfo is None:
            naive[i] = True
        else:
            values[i] = ts.tz_convert("UTC").tz_convert(None).as_unit("us").to_datetime64()
    return Parsed("timestamp", values, missing, invalid, naive)


def to_series(p: Parsed) -> pd.Series:
    """The canonical pandas column for a parsed column (RangeIndex)."""
    if p.kind in ("text", "category"):
        return pd.Series(pd.array(p.values, dtype="str"))
    if p.kind == "timestamp":
        return pd.Series(p.values, dtype=TIMESTAMP_DTYPE)
    if p.kind == "boolean":
        unknown = p.missing | p.invalid
        if unknown.any():
            return pd.Series(pd.array(p.values, dtype="boolean")).mask(unknown)
        return pd.Series(p.values, dtype=bool)
    return pd.Series(p.values, dtype="float64")
