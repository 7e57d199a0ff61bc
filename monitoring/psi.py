"""The population stability index (PSI) of one feature against its training reference.

The reference is what training logged per feature (training/artifacts.py `feature_distributions`):
the share of missing values and a histogram over the training rows' quantile edges. The recent
values are counted in the same bins (the outer bins open to minus and plus infinity, so values
outside the training range still count), with the missing values as one more bin, and

    PSI = sum over bins of (recent share - reference share) * ln(recent share / reference share),

shares floored at 1e-4 so an empty bin gives a large but finite term. The usual reading, used
here: below 0.1 no meaningful shift ("ok"), 0.1 to 0.25 a shift worth watching ("watch"),
0.25 and above a shift that needs action, e.g. retraining or checking the data feed ("alarm").
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

WATCH = 0.1
ALARM = 0.25
# Days before the end of the data whose snapshots count as recent inputs (`lapse monitor --window-days`).
WINDOW_DAYS = 28
_FLOOR = 1e-4


@dataclass(frozen=True)
class ReferenceHistogram:
    """One feature's training distribution: missing share, bin edges and counts."""

    rows: int
    missing_share: float
    edges: tuple[float, ...]
    counts: tuple[int, ...]

    @classmethod
    def from_logged(cls, entry: dict) -> "ReferenceHistogram":
        """From one feature's "pooled" entry of feature_distributions.json."""
        hist = entry.get("histogram") or {}
        return cls(int(entry.get("rows", 0)), float(entry.get("missing_share") or 0.0),
                   tuple(float(e) for e in hist.get("edges", [])), tuple(int(c) for c in hist.get("counts", [])))

    def shares(self) -> np.ndarray:
        """Bin shares, the missing bin last."""
        counts = np.asarray(self.counts, dtype=np.float64)
        known = counts / counts.sum() * (1 - self.missing_share) if counts.sum() > 0 else counts
        return np.append(known, self.missing_share)


def recent_shares(values: np.ndarray, reference: ReferenceHistogram) -> np.ndarray:
    """Shares of `values` in the reference's bins (outer bins open-ended), the missing bin last."""
    values = np.asarray(values, dtype=np.float64)
    missing = np.isnan(values)
    known = values[~missing]
    n_bins = len(reference.counts)
    if n_bins == 0 or len(values) == 0:
        return np.append(np.zeros(n_bins), missing.mean() if len(values) else 0.0)
    inner = np.asarray(reference.edges[1:-1], dtype=np.float64)
    # Bin i holds edges[i] <= x < edges[i+1] (numpy.histogram's rule), the last bin closed on the right.
    index = np.searchsorted(inner, known, side="right") if len(inner) else np.zeros(len(known), dtype=int)
    counts = np.bincount(np.minimum(index, n_bins - 1), minlength=n_bins).astype(np.float64)
    return np.append(counts / len(values), missing.sum() / len(values))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """PSI between two share vectors over the same bins."""
    e = np.maximum(np.asarray(expected, dtype=np.float64), _FLOOR)
    a = np.maximum(np.asarray(actual, dtype=np.float64), _FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def level(value: float) -> str:
    """"ok" below WATCH, "watch" below ALARM, else "alarm"."""
    return "alarm" if value >= ALARM else "watch" if value >= WATCH else "ok"
