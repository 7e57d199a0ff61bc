"""Platt scaling on a model's margin, so calibrated log-odds stay a linear map of it."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression


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


def fit_logistic(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Unpenalised logistic regression of 0/1 outcomes y on one variable x: (intercept, slope)."""
    x = np.asarray(x, dtype=np.float64).reshape(-1, 1)
    y = np.asarray(y, dtype=np.float64)
    # C=inf: no penalty (scikit-learn 1.8+ spelling); lbfgs to a tight tolerance, so the fit agrees
    # with a converged Newton-Raphson to well under 1e-6.
    model = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-10, max_iter=1000).fit(x, y)
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def fit_platt(margin: np.ndarray, y: np.ndarray) -> PlattCalibration:
    """Fit Platt scaling: risk = sigmoid(slope * margin + intercept), by logistic regression on the margin.

    The calibrated log-odds stay linear in the margin, so contributions to the margin scaled by
    `slope` (plus the intercept on the base value) add up to the calibrated log-odds.
    """
    y = np.asarray(y, dtype=np.float64)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError("calibration needs both outcomes in the validation set")
    intercept, slope = fit_logistic(margin, y)
    return PlattCalibration(slope=slope, intercept=intercept)
