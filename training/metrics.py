"""Discrimination, calibration and outreach-capacity metrics of predicted dropout risks."""

from __future__ import annotations

import math

import numpy as np
from scipy.optimize import brentq
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from models.calibration import fit_logistic

_EPS = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    """Log-odds of probabilities, clipped away from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Probabilities from log-odds."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64)))


def _both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < len(y)


def roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = np.asarray(y)
    return float(roc_auc_score(y, p)) if _both_classes(y) else math.nan


def pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the precision-recall curve (average precision); NaN with one class."""
    y = np.asarray(y)
    return float(average_precision_score(y, p)) if _both_classes(y) else math.nan


def brier(y: np.ndarray, p: np.ndarray) -> float:
    """Brier score: mean squared error of the risks against the 0/1 outcomes."""
    return float(brier_score_loss(np.asarray(y, dtype=np.float64), np.asarray(p, dtype=np.float64), pos_label=1))


def _offset_intercept(y: np.ndarray, z: np.ndarray) -> float:
    """The a of logit(P(y=1)) = a + z with z fixed (an offset): where the expected events equal the observed.

    The score equation sum(y) = sum(sigmoid(z + a)) is monotone in a, so a bracketing root finder solves it.
    """
    observed = float(np.sum(y))

    def excess(a: float) -> float:
        return float(np.sum(1.0 / (1.0 + np.exp(-(z + a))))) - observed

    low, high = -1.0, 1.0
    while excess(low) > 0:
        low *= 2.0
    while excess(high) < 0:
        high *= 2.0
    return float(brentq(excess, low, high, xtol=1e-12))


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration slope (logit(y) ~ a + b logit(p)) and calibration-in-the-large (logit(y) ~ a + offset logit(p))."""
    y = np.asarray(y, dtype=np.float64)
    if not _both_classes(y):
        return math.nan, math.nan
    z = logit(p)
    _, slope = fit_logistic(z, y)
    return slope, _offset_intercept(y, z)


def _bin_edges(bins: int) -> np.ndarray:
    return np.linspace(0.0, 1.0, bins + 1)


def reliability(y: np.ndarray, p: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width risk bin: mean predicted risk, observed rate and row count (empty bins dropped).

    The bins are sklearn.calibration.calibration_curve's (strategy "uniform"): a risk on an inner
    edge falls in the lower bin. The counts are taken on the same edges.
    """
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    observed, predicted = calibration_curve(y, p, n_bins=bins, strategy="uniform", pos_label=1)
    count = np.bincount(np.searchsorted(_bin_edges(bins)[1:-1], p), minlength=bins).astype(np.float64)
    return predicted, observed, count[count > 0]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE: the row-weighted mean absolute gap between mean predicted risk and observed rate over `bins`
    equal-width risk bins, sum_b (n_b / n) * |mean risk_b - observed rate_b| (empty bins count zero)."""
    if len(np.asarray(y)) == 0:
        return math.nan
    mean_p, mean_y, count = reliability(y, p, bins)
    return float(np.sum(count * np.abs(mean_p - mean_y)) / np.sum(count))


def top_share(p: np.ndarray, capacity: float) -> np.ndarray:
    """Boolean mask of the ceil(capacity * n) highest risks (ties broken by position)."""
    p = np.asarray(p, dtype=np.float64)
    k = min(len(p), max(1, math.ceil(capacity * len(p)))) if len(p) else 0
    mask = np.zeros(len(p), dtype=bool)
    mask[np.argsort(-p, kind="stable")[:k]] = True
    return mask


def precision_recall_at_capacity(y: np.ndarray, p: np.ndarray, capacity: float) -> tuple[float, float]:
    """Precision and recall when the top `capacity` share of risks is contacted."""
    y = np.asarray(y, dtype=np.float64)
    mask = top_share(p, capacity)
    hits = float(y[mask].sum())
    positives = float(y.sum())
    precision = hits / mask.sum() if mask.any() else math.nan
    recall = hits / positives if positives else math.nan
    return precision, recall


def threshold_at_capacity(p: np.ndarray, capacity: float) -> float:
    """The risk at or above which the top `capacity` share of `p` falls."""
    p = np.asarray(p, dtype=np.float64)
    if len(p) == 0:
        raise ValueError("cannot place a threshold on no risks")
    return float(np.quantile(p, 1.0 - capacity, method="higher"))


def capacity_label(capacity: float) -> str:
    """Metric-name form of a capacity: 0.05 -> '5pct'."""
    return f"{round(capacity * 100, 2):g}pct"


def evaluate(y: np.ndarray, p: np.ndarray, capacities: tuple[float, ...] = (0.05, 0.10),
             ece_bins: int = 10) -> dict[str, float]:
    """Every headline metric of risks `p` against outcomes `y`, by metric name."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    if y.shape != p.shape:
        raise ValueError(f"outcomes and risks differ in length: {len(y)} vs {len(p)}")
    slope, intercept = calibration_slope_intercept(y, p)
    out = {
        "rows": float(len(y)),
        "positives": float(y.sum()),
        "dropout_rate": float(y.mean()) if len(y) else math.nan,
        "mean_risk": float(p.mean()) if len(p) else math.nan,
        "auc": roc_auc(y, p),
        "pr_auc": pr_auc(y, p),
        "brier": brier(y, p) if len(y) else math.nan,
        "calibration_slope": slope,
        "calibration_intercept": intercept,
        "ece": expected_calibration_error(y, p, ece_bins),
    }
    for capacity in capacities:
        precision, recall = precision_recall_at_capacity(y, p, capacity)
        out[f"precision_at_{capacity_label(capacity)}"] = precision
        out[f"recall_at_{capacity_label(capacity)}"] = recall
    return out
