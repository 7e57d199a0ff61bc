"""Discrimination, calibration and outreach-capacity metrics of predicted dropout risks."""

from __future__ import annotations

import math

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

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
    """Mean squared error of the risks against the 0/1 outcomes."""
    return float(np.mean((np.asarray(p, dtype=np.float64) - np.asarray(y, dtype=np.float64)) ** 2))


def calibration_slope_intercept(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Calibration slope (logit(y) ~ a + b logit(p)) and calibration-in-the-large (offset model)."""
    y = np.asarray(y)
    if not _both_classes(y):
        return math.nan, math.nan
    z = logit(p)
    _, slope = fit_logistic(z, y)
    intercept, _ = fit_logistic(z, y, offset=z, slope=False)
    return slope, intercept


def reliability(y: np.ndarray, p: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per equal-width risk bin: mean predicted risk, observed rate and row count (empty bins dropped)."""
    p = np.asarray(p, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    idx = np.minimum((p * bins).astype(np.int64), bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    mean_p = np.bincount(idx, weights=p, minlength=bins)
    mean_y = np.bincount(idx, weights=y, minlength=bins)
    keep = count > 0
    return mean_p[keep] / count[keep], mean_y[keep] / count[keep], count[keep]


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean absolute gap between predicted risk and observed rate over equal-width bins."""
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
