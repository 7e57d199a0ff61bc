"""Patient-level bootstrap of holdout metrics, vectorised over resamples.

A resample draws the holdout's patients with replacement; every row of a patient (one per
as-of day) counts as often as the patient was drawn. All metrics here take a weight matrix of
shape (rows, resamples) and return one value per resample, so a few hundred resamples of every
subgroup cost a handful of matrix operations instead of a Python loop per resample. Column 0 of
`resample_weights` is all ones: the metric on the holdout itself.
"""

from __future__ import annotations

import math

import numpy as np


def resample_weights(patient_key: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """(rows, 1 + resamples) float32 weights: column 0 the holdout as it is, then one column per resample."""
    keys, codes = np.unique(np.asarray(patient_key), return_inverse=True)
    patients = len(keys)
    if patients == 0:
        raise ValueError("cannot resample an empty holdout")
    draws = np.random.default_rng(seed).integers(0, patients, size=(resamples, patients))
    offsets = draws + np.arange(resamples)[:, None] * patients
    counts = np.bincount(offsets.ravel(), minlength=resamples * patients).reshape(resamples, patients)
    weights = np.empty((len(codes), resamples + 1), dtype=np.float32)
    weights[:, 0] = 1.0
    weights[:, 1:] = counts.T[codes]
    return weights


def _blocks(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order, start of every block of tied scores in that order, and each sorted row's block."""
    order = np.argsort(scores, kind="stable")
    ordered = scores[order]
    new = np.r_[True, ordered[1:] != ordered[:-1]]
    return order, np.flatnonzero(new), np.cumsum(new) - 1


def _by_block(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """Sum sorted rows within each block of ties (nothing to add when there are no ties)."""
    return values if len(starts) == len(values) else np.add.reduceat(values, starts, axis=0)


def _pairs(scores: np.ndarray, y: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per resample: weighted (positive, negative) pairs ordered correctly (ties half), positives, negatives."""
    order, starts, _ = _blocks(scores)
    w = weights[order]
    pos_w = w * y[order, None]
    pos = _by_block(pos_w, starts)
    neg = _by_block(w - pos_w, starts)
    below = np.cumsum(neg, axis=0, dtype=np.float64) - 0.5 * neg
    return (pos * below).sum(axis=0), pos.sum(axis=0, dtype=np.float64), neg.sum(axis=0, dtype=np.float64)


class PairCounts:
    """Concordant-pair counts of one model's scores over the whole holdout, to get the AUC of
    "everyone outside a group" without re-ranking the rest for every group."""

    def __init__(self, scores: np.ndarray, y: np.ndarray, weights: np.ndarray):
        self.scores = np.asarray(scores, dtype=np.float64)
        self.y = np.asarray(y, dtype=np.float32)
        order, starts, block = _blocks(self.scores)
        w = weights[order]
        pos_w = w * self.y[order, None]
        pos = _by_block(pos_w, starts)
        neg = _by_block(w - pos_w, starts)
        cum_pos = np.cumsum(pos, axis=0, dtype=np.float64)
        cum_neg = np.cumsum(neg, axis=0, dtype=np.float64)
        self.total_pos, self.total_neg = cum_pos[-1], cum_neg[-1]
        # For every row (in holdout order): negatives scored below it, positives scored above it (ties half).
        row_block = np.empty(len(order), dtype=np.int64)
        row_block[order] = block
        self._neg_below = (cum_neg - 0.5 * neg)[row_block]
        self._pos_above = (self.total_pos - cum_pos + 0.5 * pos)[row_block]
        self.concordant = (weights * self.y[:, None] * self._neg_below).sum(axis=0, dtype=np.float64)

    def group_and_rest(self, mask: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """AUC of the rows in `mask` and AUC of all other rows, per resample (NaN without both classes)."""
        w = weights[mask]
        y = self.y[mask]
        within, pos, neg = _pairs(self.scores[mask], y, w)
        pos_w = w * y[:, None]
        pos_out = (pos_w * self._neg_below[mask]).sum(axis=0, dtype=np.float64)
        neg_in = ((w - pos_w) * self._pos_above[mask]).sum(axis=0, dtype=np.float64)
        rest = self.concordant - pos_out - neg_in + within
        with np.errstate(invalid="ignore", divide="ignore"):
            return within / (pos * neg), rest / ((self.total_pos - pos) * (self.total_neg - neg))


def band_calibration(y: np.ndarray, p: np.ndarray, weights: np.ndarray, bands: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Calibration error over risk bands and observed/expected ratio, per resample.

    Bands are quantiles of `p` (fixed from the holdout). The calibration error is the root of the
    row-weighted mean squared gap between a band's dropout rate and its mean risk, less each band's
    binomial sampling variance (the debiased estimator of Kumar, Liang & Ma, NeurIPS 2019): with a
    perfectly calibrated model it is near zero in a small group too, where a plain ECE is not.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    edges = np.unique(np.quantile(p, np.linspace(0, 1, bands + 1)[1:-1]))
    band = np.searchsorted(edges, p, side="right")
    order = np.argsort(band, kind="stable")
    starts = np.flatnonzero(np.r_[True, band[order][1:] != band[order][:-1]])
    w = weights[order]
    n = np.add.reduceat(w, starts, axis=0, dtype=np.float64)
    observed = np.add.reduceat(w * y[order, None], starts, axis=0, dtype=np.float64)
    expected = np.add.reduceat(w * p[order, None], starts, axis=0, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        rate, risk = observed / n, expected / n
        noise = np.where(n > 1, rate * (1 - rate) / (n - 1), 0.0)
        squared = np.where(n > 0, n * ((rate - risk) ** 2 - noise), 0.0).sum(axis=0) / n.sum(axis=0)
        ratio = observed.sum(axis=0, dtype=np.float64) / expected.sum(axis=0, dtype=np.float64)
    return np.sqrt(np.maximum(squared, 0.0)), ratio


def true_positive_rate(y: np.ndarray, flagged: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Share of dropouts at or above the operating threshold, per resample."""
    y = np.asarray(y, dtype=np.float32)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (weights * (y * flagged)[:, None]).sum(axis=0) / (weights * y[:, None]).sum(axis=0)


def interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of the resampled values (entry 0, the holdout itself, left out); NaN when
    more than a tenth of the resamples have no value."""
    resampled = np.asarray(values[1:], dtype=np.float64)
    finite = resampled[np.isfinite(resampled)]
    if len(finite) == 0 or len(finite) < 0.9 * len(resampled):
        return math.nan, math.nan
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(finite, [tail, 1.0 - tail])
    return float(low), float(high)
