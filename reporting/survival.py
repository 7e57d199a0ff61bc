"""Kaplan-Meier survival with Greenwood variance and log-log confidence bands."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd


def kaplan_meier(time: np.ndarray, event: np.ndarray, confidence: float = 0.95) -> pd.DataFrame:
    """Return the Kaplan-Meier estimate at each distinct time: time, n_at_risk, n_events, n_censored,
    survival, lower, upper (log-log band).

    `time` is when each subject had the event (event True) or was censored (event False); at a
    tied time, events count before censorings, so a subject censored at t is at risk at t.
    """
    time = np.asarray(time, dtype=float)
    event = np.asarray(event, dtype=bool)
    if time.shape != event.shape:
        raise ValueError("time and event must have the same length")
    columns = ["time", "n_at_risk", "n_events", "n_censored", "survival", "lower", "upper"]
    if time.size == 0:
        return pd.DataFrame({c: pd.Series(dtype=float) for c in columns})
    times, inverse = np.unique(time, return_inverse=True)
    n_events = np.bincount(inverse, weights=event.astype(float), minlength=times.size)
    n_total = np.bincount(inverse, minlength=times.size).astype(float)
    n_censored = n_total - n_events
    # Subjects still at risk at each distinct time: everyone whose time is at or after it.
    n_at_risk = n_total[::-1].cumsum()[::-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        survival = np.cumprod(1.0 - n_events / n_at_risk)
        greenwood = np.cumsum(np.where(n_events > 0, n_events / (n_at_risk * (n_at_risk - n_events)), 0.0))
        z = NormalDist().inv_cdf(0.5 + confidence / 2)
        log_s = np.log(survival)
        se = np.sqrt(greenwood) / np.abs(log_s)
        lower = survival ** np.exp(z * se)
        upper = survival ** np.exp(-z * se)
    # Before any event the estimate is exactly 1; once it reaches 0 it stays there.
    no_events_yet = greenwood == 0
    lower = np.where(no_events_yet, survival, lower)
    upper = np.where(no_events_yet, survival, upper)
    lower = np.where(survival <= 0, 0.0, lower)
    upper = np.where(survival <= 0, 0.0, upper)
    return pd.DataFrame(
        {
            "time": times,
            "n_at_risk": n_at_risk.astype(int),
            "n_events": n_events.astype(int),
            "n_censored": n_censored.astype(int),
            "survival": survival,
            "lower": lower,
            "upper": upper,
        },
        columns=columns,
    )


def survival_on_grid(km: pd.DataFrame, grid: np.ndarray) -> pd.DataFrame:
    """Evaluate the step-function estimate at each grid time: time, survival, lower, upper and
    n_at_risk (subjects whose time is at or after it)."""
    grid = np.asarray(grid, dtype=float)
    times = km["time"].to_numpy(dtype=float)
    last = np.searchsorted(times, grid, side="right") - 1  # last estimate time <= t
    out = {"time": grid}
    for column in ("survival", "lower", "upper"):
        values = km[column].to_numpy(dtype=float)
        out[column] = np.where(last >= 0, values[np.maximum(last, 0)], 1.0) if values.size else np.ones(grid.size)
    first_later = np.searchsorted(times, grid, side="left")
    at_risk = np.append(km["n_at_risk"].to_numpy(dtype=int), 0)
    out["n_at_risk"] = at_risk[first_later]
    return pd.DataFrame(out)


def survival_at(km: pd.DataFrame, t: float) -> dict[str, float]:
    """Return the step-function estimate at time t: survival, lower, upper and n_at_risk (time >= t)."""
    row = survival_on_grid(km, np.array([t])).iloc[0]
    return {
        "survival": float(row["survival"]),
        "lower": float(row["lower"]),
        "upper": float(row["upper"]),
        "n_at_risk": int(row["n_at_risk"]),
    }


def median_survival(km: pd.DataFrame) -> dict[str, float | None]:
    """Return the median survival time and its confidence limits (None where not reached)."""

    def first_time_at_or_below(column: str) -> float | None:
        hit = km.loc[km[column] <= 0.5, "time"]
        return float(hit.iloc[0]) if not hit.empty else None

    return {
        "median": first_time_at_or_below("survival"),
        # The lower band reaches 0.5 first: it gives the lower limit of the median.
        "lower": first_time_at_or_below("lower"),
        "upper": first_time_at_or_below("upper"),
    }
