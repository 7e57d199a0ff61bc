"""Each (patient, as-of) row's range of events in each stream and look-back window, as array positions."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from types import MappingProxyType
from typing import NamedTuple

import numpy as np

from features.event_index import DAY_US, EventIndex, Stream


def take(values: np.ndarray, idx: np.ndarray, ok: np.ndarray, fill=np.nan) -> np.ndarray:
    """values[idx] where ok, else fill (safe when values is empty); idx of any shape."""
    if len(values) == 0:
        return np.full(np.shape(idx), fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
    return np.where(ok, values.take(idx, mode="clip"), fill)


def pick(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """values[idx] with idx clipped into range (zeros when values is empty): `take` without its fill, for rows
    the caller masks out itself, whose values do not matter (np.where is the costliest step of `take`)."""
    if len(values) == 0:
        return np.zeros(np.shape(idx), dtype=values.dtype)
    return values.take(idx, mode="clip")


_accumulate = np.add.accumulate


def prefix(values: np.ndarray) -> np.ndarray:
    """Running totals of integers with a leading 0: the sum over [a, b) is out[b] - out[a], exactly."""
    out = np.empty(len(values) + 1, dtype=np.int64)
    out[0] = 0
    # The ufunc itself, summing in int64 whatever the input: cumsum adds a layer, and a cast of booleans per call.
    _accumulate(values, out=out[1:], dtype=np.int64)
    return out


def expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, event position) pairs for every event in each row's range [lo, hi)."""
    if len(lo) == 1:  # one row (one patient at one time): its range as it is, in two array operations, not eight
        first = int(lo[0])
        n_events = max(int(hi[0]) - first, 0)
        return np.zeros(n_events, dtype=np.intp), np.arange(first, first + n_events)
    n = np.maximum(hi - lo, 0)
    rows = np.arange(len(n)).repeat(n)
    starts = n.cumsum() - n
    return rows, np.arange(len(rows)) - (starts - lo).repeat(n)


# Rows of a stream's bounds: the patient's first event, just past the last event at or before T,
# then the start of each look-back window.
_FIRST, _HI, _WINDOWS = 0, 1, 2


@lru_cache(maxsize=16)
def _windows_layout(days: tuple[int, ...]) -> tuple[Mapping[int, int], np.ndarray]:
    """Each window's row in a stream's bounds, and how far back each bound's time is from T (0, then each window
    in microseconds) as a column; read-only, kept per set of windows."""
    back = np.array([0, *days], dtype=np.int64).reshape(-1, 1) * DAY_US
    back.flags.writeable = False
    return MappingProxyType({d: _WINDOWS + i for i, d in enumerate(days)}), back


class _TypeBounds(NamedTuple):
    """Bounds of every type stream (type, bound row, query row), their event counts (float64, read-only) and
    each stream's first and hi positions and whether it has any event (type, query row)."""

    bounds: np.ndarray
    counts: np.ndarray
    first: np.ndarray
    hi: np.ndarray
    has: np.ndarray


class RowWindows:
    """Positions of each row's events in an EventIndex: up to T, from enrolment, or from T - w days.

    A row's events of a stream in a window are positions [lo, hi): hi is just past the last
    event at or before T, lo the first event after T - w days (or the patient's first event).
    Every look-back window (`days`) is known up front, so each stream answers all of a row's
    bounds with one binary search over a stacked query array, computed on first use.

    For a few rows the number of array operations, not their size, is the cost: what several features
    use (a stream's ends, its counts, the days since enrolment) is worked out once per stream and kept.
    """

    def __init__(self, ix: EventIndex, codes: np.ndarray, T: np.ndarray, enrolled: np.ndarray,
                 days: tuple[int, ...]):
        self.ix, self.codes, self.T = ix, codes, T
        self.n_rows = len(codes)
        self.enrolled = enrolled[codes]
        self.elapsed = T - self.enrolled
        self.elapsed_days = self.elapsed / DAY_US
        self.day_of_T = self.elapsed // DAY_US  # T's patient-day (day 0 starts at enrolment)
        self.started_days = -(-self.elapsed // DAY_US)  # patient-days begun by T
        self._slot, back = _windows_layout(days)
        start = codes.astype(np.int64) * ix.span
        # Times clipped into the index's span still count correctly (see EventIndex.query_key);
        # a patient's keys lie strictly above `start`, so "right of start" is their first event.
        times = np.subtract(T, back, dtype=np.int64)  # T, then T - each window
        times -= ix.base
        offsets = np.minimum(np.maximum(times, 0, out=times), ix.span - 1, out=times)
        self._queries = np.empty((_WINDOWS + len(days), self.n_rows), dtype=np.int64)
        self._queries[_FIRST] = start
        np.add(offsets, start, out=self._queries[_HI:])
        self.start, self.qT = self._queries[_FIRST], self._queries[_HI]
        self._ends: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._bounds: dict[str, np.ndarray] = {}
        self._counts: dict[str, np.ndarray] = {}
        self._slots: dict[tuple[int | None, ...], np.ndarray] = {}
        self._types: _TypeBounds | None = None
        self._types_searched = False

    def stream(self, name: str) -> Stream:
        return self.ix.streams[name]

    def _type_bounds(self, stream: str) -> tuple[_TypeBounds, int] | None:
        """Every type stream's bounds, counts and ends, from one search of the index (EventIndex.type_bounds),
        with the position of `stream` among them; None for own engagement, or when the index searches each
        stream on its own."""
        t = self.ix.type_of.get(stream)
        if t is None:
            return None
        if not self._types_searched:
            self._types_searched = True
            b = self.ix.type_bounds(self._queries)
            if b is not None:
                counts = (b[:, _HI:_HI + 1] - b).astype(np.float64)
                counts.flags.writeable = False
                first, hi = b[:, _FIRST], b[:, _HI]
                self._types = _TypeBounds(b, counts, first, hi, hi > first)
        return None if self._types is None else (self._types, t)

    def _ends_of(self, stream: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The stream's first and hi positions for every row, and whether the row has any event (hi > first)."""
        found = self._ends.get(stream)
        if found is None:
            typed = self._type_bounds(stream)
            if typed is not None:
                types, t = typed
                found = self._ends[stream] = (types.first[t], types.hi[t], types.has[t])
                return found
            bounds = self._bounds.get(stream)
            if bounds is None:
                bounds = self.ix.streams[stream].key.searchsorted(self._queries[:_WINDOWS], side="right")
            first, hi = bounds[_FIRST], bounds[_HI]
            found = self._ends[stream] = (first, hi, hi > first)
        return found

    def bounds(self, stream: str) -> np.ndarray:
        """The stream's positions for every row: first, hi, then the start of each window in `days`."""
        found = self._bounds.get(stream)
        if found is None:
            typed = self._type_bounds(stream)
            if typed is not None:
                found = typed[0].bounds[typed[1]]
            else:
                found = self.ix.streams[stream].key.searchsorted(self._queries, side="right")
            self._bounds[stream] = found
        return found

    def hi(self, stream: str) -> np.ndarray:
        return self._ends_of(stream)[1]

    def first(self, stream: str) -> np.ndarray:
        return self._ends_of(stream)[0]

    def lo(self, stream: str, days: int | None) -> np.ndarray:
        """Start of the window of `days` before T; None means since enrolment (all earlier events)."""
        if days is None:
            return self._ends_of(stream)[0]
        return self.bounds(stream)[self._slot[days]]

    def _slots_of(self, windows: tuple[int | None, ...]) -> np.ndarray:
        """The rows of `bounds` that hold the start of each window (None: since enrolment)."""
        found = self._slots.get(windows)
        if found is None:
            found = self._slots[windows] = np.array([_FIRST if d is None else self._slot[d] for d in windows])
        return found

    def lo_each(self, stream: str, windows: tuple[int | None, ...]) -> np.ndarray:
        """`lo` of every window in `windows`, a row each: one array operation then serves every window."""
        return self.bounds(stream)[self._slots_of(windows)]

    def _count_rows(self, stream: str) -> np.ndarray:
        counts = self._counts.get(stream)
        if counts is None:
            typed = self._type_bounds(stream)
            if typed is not None:
                counts = typed[0].counts[typed[1]]  # a view of a read-only array: read-only
            else:
                b = self.bounds(stream)
                counts = (b[_HI] - b).astype(np.float64)
                counts.flags.writeable = False
            self._counts[stream] = counts
        return counts

    def count(self, stream: str, days: int | None) -> np.ndarray:
        """Events of the stream in the window, as float64 (read-only: a row of a cached array)."""
        if days is None and stream not in self._bounds and self._type_bounds(stream) is None:
            first, hi, _ = self._ends_of(stream)
            return (hi - first).astype(np.float64)
        return self._count_rows(stream)[_FIRST if days is None else self._slot[days]]

    def count_each(self, stream: str, windows: tuple[int | None, ...]) -> np.ndarray:
        """`count` of every window in `windows`, a row each."""
        return self._count_rows(stream)[self._slots_of(windows)]

    def has_any(self, stream: str) -> np.ndarray:
        return self._ends_of(stream)[2]

    def last(self, stream: str, column: str, fill=np.nan) -> np.ndarray:
        """`column` ("time" or "value") of each row's last event at or before T, else fill."""
        _, hi, has = self._ends_of(stream)
        return take(getattr(self.stream(stream), column), hi - 1, has, fill)

    def days_since_last(self, stream: str) -> np.ndarray:
        """Days from the last event to T; days since enrolment when there was none."""
        _, hi, has = self._ends_of(stream)
        # Enrolment stands in for the last event when there was none.
        return (self.T - take(self.stream(stream).time, hi - 1, has, self.enrolled)) / DAY_US
