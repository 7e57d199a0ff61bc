"""Events encoded to integers, sorted once by patient and time and split by type, for fast look-ups.

Every event gets an int64 key `patient_code * span + (time - first_time + 1)`, so one
`np.searchsorted` on a stream's keys answers "how many of this patient's events of this
type happened at or before T" for many (patient, T) pairs at once. Counts come from
positions, so results do not depend on which other patients are in the batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.api.extensions import ExtensionArray
from pydantic_core import TzInfo

from features.contract import OWN_ENGAGEMENT, EventType

DAY_US = 86_400 * 1_000_000
TYPES: tuple[str, ...] = tuple(t.value for t in EventType)
TYPE_CODES: dict[str, int] = {name: code for code, name in enumerate(TYPES)}  # name -> position
OWN = "own"  # the stream of every own-engagement event
OWN_CODES = np.array([t in OWN_ENGAGEMENT for t in EventType], dtype=bool)
# Keys stay below this so that key arithmetic never overflows int64.
_KEY_LIMIT = 2**62
NAT = np.iinfo(np.int64).min  # how pandas stores a missing time
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)
# tzinfo classes of one fixed offset whatever the date: the standard library's, and pydantic's (a request's times
# with the same offset, "Z" say, share one such object).
_FIXED_OFFSET_ZONES = (timezone, TzInfo)


def micros(series: pd.Series | ExtensionArray | np.ndarray, what: str) -> np.ndarray:
    """Timestamps of a tz-aware datetime column (Series or array) as int64 microseconds since the epoch (UTC)."""
    array = series.array if isinstance(series, (pd.Series, pd.Index)) else series
    dtype = array.dtype
    if not isinstance(dtype, pd.DatetimeTZDtype):
        raise ValueError(f"{what} must be timezone-aware UTC timestamps (got dtype {dtype})")
    if dtype.unit != "us":
        array = array.as_unit("us")
    values = np.asarray(array.asi8, dtype=np.int64)
    # A missing time is int64's least value: one reduction finds whether there is one, the row only then.
    if len(values) and values.min() == NAT:
        raise ValueError(f"{what} has a missing time at row {int(np.argmax(values == NAT))}")
    return values


def aware_micros(moment: datetime) -> int:
    """A timezone-aware datetime as microseconds since the epoch (UTC), unchecked: for times known to be aware."""
    return (moment - _EPOCH) // _MICROSECOND


def aware_micros_each(moments: Sequence[datetime]) -> np.ndarray:
    """`aware_micros` of each of `moments` (all timezone-aware), as int64."""
    zone = moments[0].tzinfo if len(moments) else None
    # Two datetimes with the same tzinfo object subtract as wall times, without asking the zone for their offsets,
    # which was two thirds of the cost; against the epoch in that zone the difference is exact when the zone has one
    # fixed offset. A moment in any other zone subtracts as in aware_micros.
    epoch = _EPOCH.astimezone(zone) if type(zone) in _FIXED_OFFSET_ZONES else _EPOCH
    since = [moment - epoch for moment in moments]
    # A timedelta's parts summed by numpy: Python's floor division by a microsecond costs more than all the rest.
    n = len(since)
    days = np.fromiter([d.days for d in since], dtype=np.int64, count=n)
    seconds = np.fromiter([d.seconds for d in since], dtype=np.int64, count=n)
    microseconds = np.fromiter([d.microseconds for d in since], dtype=np.int64, count=n)
    return (days * 86_400 + seconds) * 1_000_000 + microseconds


def moment_micros(value: object, what: str) -> int:
    """One timezone-aware time (datetime, pd.Timestamp) as int64 microseconds since the epoch (UTC), as
    `micros` gives it for a column of such times."""
    if not isinstance(value, datetime):
        value = pd.Timestamp(value)
    if value is pd.NaT:
        raise ValueError(f"{what} is missing")
    if value.utcoffset() is None:
        raise ValueError(f"{what} must be a timezone-aware time")
    return int(aware_micros(value))


def text_array(values: pd.Series | pd.Index | ExtensionArray | np.ndarray | pa.Array
               ) -> pa.ChunkedArray | pa.Array:
    """Text values as Arrow strings (no copy when they are Arrow-backed already)."""
    if isinstance(values, (pd.Series, pd.Index)):
        values = values.array
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
    elif hasattr(values, "__arrow_array__"):
        arr = values.__arrow_array__()  # Arrow-backed text: no copy, no per-call pandas checks
    else:
        arr = pa.array(np.asarray(values, dtype=object), from_pandas=True)
    if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
        arr = pc.cast(arr, pa.string())
    return arr


def encode(values: pd.Series | ExtensionArray | np.ndarray,
           universe: pd.Index | np.ndarray | pd.Series | pa.Array | pa.ChunkedArray,
           dtype: type[np.signedinteger] = np.int64) -> np.ndarray:
    """Position of each value in `universe` (distinct text values) as `dtype`, -1 where absent."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        categorical = values.array if isinstance(values, (pd.Series, pd.Index)) else values
        lookup = np.append(encode(pd.Series(categorical.categories.astype(str), dtype="str"), universe), -1)
        return lookup[categorical.codes].astype(dtype, copy=False)
    if not isinstance(universe, (pa.Array, pa.ChunkedArray)):
        universe = universe if isinstance(universe, (pd.Series, pd.Index)) else np.asarray(universe, dtype=object)
    text, value_set = text_array(values), text_array(universe)
    if len(value_set) == 1 and not value_set.null_count:
        if len(text) == 1:
            # One value against one (a one-row as-of table): Python's comparison of the two strings, not an Arrow
            # call; a missing value (None) is not found, as in index_in.
            return np.array([0 if text[0].as_py() == value_set[0].as_py() else -1], dtype=dtype)
        # One value to find (a one-patient table): an equality test, whose fixed cost is well below Arrow's set look-up.
        same = pc.equal(text, value_set[0])
        if _true_count(same) == len(text):  # all of them (a patient's own events): the codes need no conversion
            return np.zeros(len(text), dtype=dtype)
        if same.null_count:  # a missing value is not found, as index_in has it
            same = same.fill_null(False)
        return np.where(same.to_numpy(zero_copy_only=False), 0, -1).astype(dtype, copy=False)
    found = pc.index_in(text, value_set=value_set)
    if found.null_count:  # filling costs as much as the look-up itself: only when something is absent
        found = found.fill_null(-1)
    # index_in's int32 positions converted once, straight to `dtype`.
    return found.to_numpy(zero_copy_only=False).astype(dtype)


def _true_count(mask: pa.Array | pa.ChunkedArray) -> int:
    """How many values of a boolean array are true (a missing value is not)."""
    if isinstance(mask, pa.ChunkedArray):
        return sum(chunk.true_count for chunk in mask.iterchunks())
    return mask.true_count


@lru_cache(maxsize=32)
def _names_array(names: tuple[str, ...]) -> pa.Array:
    """A vocabulary as Arrow text, built once per vocabulary rather than per call; large_string, as pandas'
    str columns are, so that a look-up need not convert it."""
    return pa.array(names, type=pa.large_string())


def type_codes(values: pd.Series | np.ndarray | Sequence[str], names: tuple[str, ...] = TYPES) -> np.ndarray:
    """Position of each event type in `names` (EventType, then any declared types) as int8, -1 if unknown."""
    if not hasattr(values, "dtype"):
        values = np.asarray(values, dtype=object)
    return encode(values, _names_array(names), np.int8)


def patient_chunks(n_patients: int, ev_codes: np.ndarray, ev_times: np.ndarray) -> list[tuple[int, int]]:
    """Ranges of patient codes small enough that their event keys fit in int64."""
    if len(ev_times) == 0:
        return [(0, n_patients)]
    span = int(ev_times.max()) - int(ev_times.min()) + 2
    per_chunk = max(1, _KEY_LIMIT // span)
    return [(lo, min(lo + per_chunk, n_patients)) for lo in range(0, max(n_patients, 1), per_chunk)]


class Stream:
    """The events of one type (or all own engagement), sorted by patient then time.

    Columns are gathered from the sorted events on first use, so unused ones cost nothing.
    """

    def __init__(self, sorted_columns: dict[str, np.ndarray], positions: np.ndarray | slice):
        self._columns = sorted_columns
        self._positions = positions
        self._cache: dict[str, np.ndarray] = {}

    def _column(self, name: str) -> np.ndarray:
        if name not in self._cache:
            self._cache[name] = self._columns[name][self._positions]
        return self._cache[name]

    @property
    def key(self) -> np.ndarray:
        return self._column("key")

    @property
    def time(self) -> np.ndarray:
        return self._column("time")

    @property
    def value(self) -> np.ndarray:
        return self._column("value")

    @property
    def code(self) -> np.ndarray:
        return self._column("code")


class EventIndex:
    """Sorted, per-type views of the events of patients 0..n_patients-1 for point-in-time queries."""

    def __init__(self, codes: np.ndarray, times: np.ndarray, types: np.ndarray, values: np.ndarray,
                 n_patients: int, streams: tuple[str, ...] = (*TYPES, OWN), names: tuple[str, ...] = TYPES,
                 own_codes: np.ndarray = OWN_CODES):
        keep = (codes >= 0) & (types >= 0)
        if not keep.all():
            codes, times, types, values = codes[keep], times[keep], types[keep], values[keep]
        self.n_patients = n_patients
        self.base = (int(times.min()) - 1) if len(times) else 0
        self.span = (int(times.max()) - self.base + 1) if len(times) else 2
        if n_patients * self.span > _KEY_LIMIT:
            raise ValueError("too many patients over too long a time span for one event index; use patient_chunks")
        key = codes.astype(np.int64) * self.span + (times - self.base)
        if len(key) > 1 and not (key[1:] >= key[:-1]).all():
            order = key.argsort(kind="stable")
            key, codes, times, types, values = key[order], codes[order], times[order], types[order], values[order]
        columns = {"key": key, "time": times, "value": values, "code": codes}
        self.streams: dict[str, Stream] = {}
        self.type_of: dict[str, int] = {}  # each type stream's position in `names`
        self._typed: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self._typed_key: np.ndarray | None = None
        if OWN in streams:
            self.streams[OWN] = Stream(columns, own_codes[types].nonzero()[0])
        wanted = [names.index(s) for s in streams if s != OWN]
        if wanted:
            # Array methods rather than numpy's functions of the same name: for one patient the call, not the
            # work, is the cost, and the functions add a Python layer.
            by_type = types.astype(np.uint8).argsort(kind="stable")
            counts = np.bincount(types, minlength=len(names))
            ends = counts.cumsum()
            starts = ends - counts
            first, last = starts.tolist(), ends.tolist()
            for t in wanted:
                self.streams[names[t]] = Stream(columns, by_type[first[t]:last[t]])
                self.type_of[names[t]] = t
            # Every key and query key is below `room`: set apart by type, all types' keys fit in one sorted array
            # when len(names) rooms fit in int64, and one search serves every type. Only for one patient (serving's
            # case), where each stream's own search costs more in array operations than in work; over many
            # patients the streams' smaller arrays search faster.
            room = n_patients * self.span
            if n_patients == 1 and len(names) * room <= _KEY_LIMIT:
                self._typed = (by_type, counts, starts)
                self._key, self._room = key, room

    def type_bounds(self, queries: np.ndarray) -> np.ndarray | None:
        """Every type's stream searched at once: out[t] is the stream of type t's
        `key.searchsorted(queries, side="right")`, for every type of `names`; None for an index of many patients
        (or whose types' keys do not fit in one array), whose streams are then searched one by one."""
        if self._typed is None:
            return None
        by_type, counts, starts = self._typed
        if self._typed_key is None:
            offsets = np.arange(len(counts), dtype=np.int64) * self._room
            self._typed_key = self._key[by_type] + offsets.repeat(counts)
        shape = (len(counts),) + (1,) * queries.ndim
        typed_queries = queries + (np.arange(len(counts), dtype=np.int64) * self._room).reshape(shape)
        return self._typed_key.searchsorted(typed_queries, side="right") - starts.reshape(shape)

    def query_key(self, codes: np.ndarray, times: np.ndarray) -> np.ndarray:
        """Keys for (patient, time) pairs, clipped so that out-of-range times still count correctly."""
        offset = np.minimum(np.maximum(times - self.base, 0), self.span - 1)
        return codes.astype(np.int64) * self.span + offset

    def upto(self, stream: str, qkey: np.ndarray) -> np.ndarray:
        """Position just past each query's patient's last `stream` event at or before the query time."""
        return self.streams[stream].key.searchsorted(qkey, side="right")

    def first(self, stream: str, codes: np.ndarray) -> np.ndarray:
        """Position of each patient's first `stream` event (where it would be, if none)."""
        return self.streams[stream].key.searchsorted(codes.astype(np.int64) * self.span, side="left")


def indexed_chunks(row_codes: np.ndarray, ev_codes: np.ndarray, ev_times: np.ndarray, ev_types: np.ndarray,
                   ev_values: np.ndarray, n_patients: int, streams: tuple[str, ...] | None = None,
                   names: tuple[str, ...] = TYPES, own_codes: np.ndarray = OWN_CODES):
    """Yield (lo, hi, rows, EventIndex) per range of patient codes whose event keys fit in int64.

    `names` is the vocabulary the type codes index (lapse's types by default) and `own_codes` which are own
    engagement; `streams` the streams to build (every type and own engagement by default).

    `rows` selects the query rows of patients lo..hi-1 (a full slice when one range covers all).
    """
    streams = (*names, OWN) if streams is None else streams
    chunks = patient_chunks(n_patients, ev_codes, ev_times)
    for lo, hi in chunks:
        if len(chunks) == 1:
            ev, rows = slice(None), slice(None)
        else:
            ev = (ev_codes >= lo) & (ev_codes < hi)
            rows = np.flatnonzero((row_codes >= lo) & (row_codes < hi))
        yield lo, hi, rows, EventIndex(ev_codes[ev] - lo, ev_times[ev], ev_types[ev], ev_values[ev], hi - lo, streams,
                                       names, own_codes)
