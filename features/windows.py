"""Each (patient, as-of) row's range of events in each stream and look-back window, as array positions."""

from __future__ import annotations

import numpy as np

from features.event_index import DAY_US, EventIndex, Stream


def take(values: np.ndarray, idx: np.ndarray, ok: np.ndarray, fill=np.nan) -> np.ndarray:
    """values[idx] where ok, else fill (safe when values is empty)."""
    if len(values) == 0:
        return np.full(len(idx), fill, dtype=np.result_type(values.dtype, np.asarray(fill).dtype))
    return np.where(ok, values.take(idx, mode="clip"), fill)


def prefix(values: np.ndarray) -> np.ndarray:
    """Running totals of integers with a leading 0: the sum over [a, b) is out[b] - out[a], exactly."""
    out = np.zeros(len(values) + 1, dtype=np.int64)
    np.cumsum(values, out=out[1:])
    return out


def expand(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, event position) pairs for every event in each row's range [lo, hi)."""
    n = np.maximum(hi - lo, 0)
    rows = np.repeat(np.arange(len(n)), n)
    starts = np.cumsum(n) - n
    return rows, np.arange(int(n.sum())) - np.repeat(starts - lo, n)


# Rows of a stream's bounds: the patient's first event, just past the last event at or before T,
# then the start of each look-back window.
_FIRST, _HI, _WINDOWS = 0, 1, 2


class RowWindows:
    """Positions of each row's events in an EventIndex: up to T, from enrolment, or from T - w days.

    A row's events of a stream in a window are positions [lo, hi): hi is just past the last
    event at or before T, lo the first event after T - w days (or the patient's first event).
    Every look-back window (`days`) is known up front, so each stream answers all of a row's
    bounds with one binary search over a stacked query array, computed on first use.
    """

    def __init__(self, ix: EventIndex, codes: np.ndarray, T: np.ndarray, enrolled: np.ndarray,
                 days: tuple[int, ...]):
        self.ix, self.codes, self.T = ix, codes, T
        self.n_rows = len(codes)
        self.elapsed = T - enrolled[codes]
        self._slot = {d: _WINDOWS + i for i, d in enumerate(days)}
        start = codes.astype(np.int64) * ix.span
        # Times clipped into the index's span still count correctly (see EventIndex.query_key);
        # a patient's keys lie strictly above `start`, so "right of start" is their first event.
        times = np.empty((1 + len(days), self.n_rows), dtype=np.int64)
        times[0] = T
        times[1:] = T - np.asarray(days, dtype=np.int64)[:, None] * DAY_US
        times -= ix.base
        offsets = np.minimum(np.maximum(times, 0, out=times), ix.span - 1, out=times)
        self._queries = np.empty((_WINDOWS + len(days), self.n_rows), dtype=np.int64)
        self._queries[_FIRST] = start
        np.add(offsets, start, out=self._queries[_HI:])
        self.start, self.qT = self._queries[_FIRST], self._queries[_HI]
        self._ends: dict[str, np.ndarray] = {}
        self._bounds: dict[str, np.ndarray] = {}
        self._counts: dict[str, np.ndarray] = {}

    def stream(self, name: str) -> Stream:
        return self.ix.streams[name]

    def _ends_of(self, stream: str) -> np.ndarray:
        """The stream's first and hi positions (rows _FIRST, _HI) for every row."""
        found = self._bounds.get(stream)
        if found is None:
            found = self._ends.get(stream)
            if found is None:
                found = self._ends[stream] = self.ix.streams[stream].key.searchsorted(self._queries[:_WINDOWS],
                                                                                       side="right")
        return found

    def bounds(self, stream: str) -> np.ndarray:
        """The stream's positions for every row: first, hi, then the start of each window in `days`."""
        found = self._bounds.get(stream)
        if found is None:
            found = self._bounds[stream] = self.ix.streams[stream].key.searchsorted(self._queries, side="right")
        return found

    def hi(self, stream: str) -> np.ndarray:
        return self._ends_of(stream)[_HI]

    def first(self, stream: str) -> np.ndarray:
        return self._ends_of(stream)[_FIRST]

    def lo(self, stream: str, days: int | None) -> np.ndarray:
        """Start of the window of `days` before T; None means since enrolment (all earlier events)."""
        if days is None:
            return self._ends_of(stream)[_FIRST]
        return self.bounds(stream)[self._slot[days]]

    def count(self, stream: str, days: int | None) -> np.ndarray:
        """Events of the stream in the window, as float64 (read-only: a row of a cached array)."""
        if days is None and stream not in self._bounds:
            ends = self._ends_of(stream)
            return (ends[_HI] - ends[_FIRST]).astype(np.float64)
        counts = self._counts.get(stream)
        if counts is None:
            b = self.bounds(stream)
            counts = self._counts[stream] = (b[_HI] - b).astype(np.float64)
            counts.flags.writeable = False
        return counts[_FIRST if days is None else self._slot[days]]

    def has_any(self, stream: str) -> np.ndarray:
        ends = self._ends_of(stream)
        return ends[_HI] > ends[_FIRST]

    def last(self, stream: str, column: str, fill=np.nan) -> np.ndarray:
        """`column` ("time" or "value") of each row's last event at or before T, else fill."""
        values = getattr(self.stream(stream), column)
        ends = self._ends_of(stream)
        return take(values, ends[_HI] - 1, ends[_HI] > ends[_FIRST], fill)

    def days_since_last(self, stream: str) -> np.ndarray:
        """Days from the last event to T; days since enrolment when there was none."""
        ends = self._ends_of(stream)
        has = ends[_HI] > ends[_FIRST]
        return np.where(has, (self.T - take(self.stream(stream).time, ends[_HI] - 1, has, 0)) / DAY_US,
                        self.elapsed / DAY_US)
