"""Platt scaling on a model's margin, so calibrated log-odds stay a linear map of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass(frozen=True)
class PlattCalibration:
    """Calibrated log-odds = slope * margin + intercept."""

    slope: float = 1.0
    intercept: float = 0.0

    def log_odds(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of raw margins."""
        return self.slope * np.asarray(margin, dtype=np.float64) + self.intercept

    def risk(self, margin: np.ndarray) -> np.ndarray:
        """Calibrated probabilities of raw margins."""
        return 1.0 / (1.0 + np.exp(-self.log_odds(margin)))

    def to_dict(self) -> dict[str, float]:
        """JSON form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict) -> "PlattCalibration":
        """Read the JSON form back."""
        return cls(slope=float(raw["slope"]), intercept=float(raw["intercept"]))


def fit_logistic(x: np.ndarray, y: np.ndarray, offset: np.ndarray | None = None, slope: bool = True,
                 max_iter: int = 50) -> tuple[float, float]:
    """Unpenalised logistic regression of y on x (or intercept only, with an offset): (intercept, slope)."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    off = np.zeros_like(x) if offset is None else np.asarray(offset, dtype=np.float64)
    design = np.column_stack([np.ones_like(x), x]) if slope else np.ones((len(x), 1))
    beta = np.zeros(design.shape[1])
    for _ in range(max_iter):
        eta = design @ beta + off
        mu = 1.0 / (1.0 + np.exp(-eta))
        w = np.maximum(mu * (1.0 - mu), 1e-12)
        grad = design.T @ (y - mu)
        hess = design.T @ (design * w[:, None]) + 1e-9 * np.eye(design.shape[1])
        step = np.linalg.solve(hess, grad)
        beta = beta + step
        if np.max(np.abs(step)) < 1e-10:
            break
    return (float(beta[0]), float(beta[1])) if slope else (float(beta[0]), 1.0)


def fit_platt(margin: np.ndarray, y: np.ndarray) -> PlattCalibration:
    """Fit Platt scaling (unpenalised logistic regression of y on the margin)."""
    margin = np.asarray(margin, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs both outcomes in the validation set")
    intercept, slope = fit_logistic(margin, y)
    return PlattCalibration(slope=slope, intercept=intercept)
