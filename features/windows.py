"""Each (patient, as-of) row's range of events in each stream and look-back window, as array positions."""

from __future__ import annotations

import numpy as np

from features.event_index import DAY_US, EventIndex


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


class RowWindows:
    """Positions of each row's events in an EventIndex: up to T, from enrolment, or from T - w days.

    A row's events of a stream in a window are positions [lo, hi): hi is just past the last
    event at or before T, lo the first event after T - w days (or the patient's first event).
    Results are cached, so asking twice costs nothing.
    """

    def __init__(self, ix: EventIndex, codes: np.ndarray, T: np.ndarray, enrolled: np.ndarray):
        self.ix, self.codes, self.T = ix, codes, T
        self.n_rows = len(codes)
        self.elapsed = T - enrolled[codes]
        self.qT = ix.query_key(codes, T)
        self._cache: dict[tuple, np.ndarray] = {}

    def _cached(self, key: tuple, make) -> np.ndarray:
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]

    def stream(self, name: str):
        return self.ix.streams[name]

    def hi(self, stream: str) -> np.ndarray:
        return self._cached(("hi", stream), lambda: self.ix.upto(stream, self.qT))

    def first(self, stream: str) -> np.ndarray:
        return self._cached(("first", stream), lambda: self.ix.first(stream, self.codes))

    def lo(self, stream: str, days: int | None) -> np.ndarray:
        """Start of the window of `days` before T; None means since enrolment (all earlier events)."""
        if days is None:
            return self.first(stream)
        query = self._cached(("q", days), lambda: self.ix.query_key(self.codes, self.T - days * DAY_US))
        return self._cached(("lo", stream, days), lambda: self.ix.upto(stream, query))

    def count(self, stream: str, days: int | None) -> np.ndarray:
        return (self.hi(stream) - self.lo(stream, days)).astype(np.float64)

    def has_any(self, stream: str) -> np.ndarray:
        return self.hi(stream) > self.first(stream)

    def last(self, stream: str, column: str, fill=np.nan) -> np.ndarray:
        """`column` ("time" or "value") of each row's last event at or before T, else fill."""
        values = getattr(self.stream(stream), column)
        return take(values, self.hi(stream) - 1, self.has_any(stream), fill)

    def days_since_last(self, stream: str) -> np.ndarray:
        """Days from the last event to T; days since enrolment when there was none."""
        has = self.has_any(stream)
        return np.where(has, (self.T - self.last(stream, "time", 0)) / DAY_US, self.elapsed / DAY_US)
