"""Features of the program's own declared event types ([events] in lapse.toml), as array expressions over rows.

For each own type: counts in each window and since enrolment and days since the last one; for an
own-engagement type also its active days in each window and the trend of its daily count; for a type whose
value is a score, count or duration, its level in the last week (mean score, or total count or duration) and
the change from the week before. Called by `features.usage.usage_features`: the one code path for training,
serving and batch. Names and clinician words are in `features.catalog.declared_specs`.
"""

from __future__ import annotations

import numpy as np

from config import EventTypeDeclaration, FeatureConfig
from features.event_index import DAY_US
from features.windows import RowWindows, expand, pick, prefix

WEEK_DAYS = 7
VALUE_SCALE = 1_000_000  # values are summed as integer micro-units (exact, order-free)


def level_window_days() -> tuple[int, ...]:
    """The look-back windows the value features need: the last week and the last two weeks."""
    return (WEEK_DAYS, 2 * WEEK_DAYS)


def daily_slope(w: RowWindows, stream: str, trend: int) -> np.ndarray:
    """Least-squares slope of the stream's events per day over the last `trend` days since enrolment.

    With L days and events j_e days back, slope = 6 ((L - 1) N - 2 sum j_e) / (L (L^2 - 1)); NaN under 2 days.
    """
    events = w.stream(stream)
    bins = np.minimum(np.maximum(w.started_days, 0), trend)
    rows, ev = expand(w.lo(stream, trend), w.hi(stream))
    day_back = (w.T[rows] - events.time[ev]) // DAY_US
    inside = day_back < bins[rows]
    counted = rows[inside]
    n_events = np.bincount(counted, minlength=w.n_rows)
    sum_back = np.bincount(counted, weights=day_back[inside], minlength=w.n_rows)
    slope = 6.0 * ((bins - 1) * n_events - 2.0 * sum_back) / (bins * (bins * bins - 1))
    return np.where(bins >= 2, slope, np.nan)


def _active_days(w: RowWindows, stream: str, enrolled: np.ndarray):
    """A function of a window giving each row's days (since enrolment) with at least one event of the stream."""
    events = w.stream(stream)
    day = (events.time - enrolled[events.code]) // DAY_US
    first = np.ones(len(day), dtype=bool)
    first[1:] = (events.code[1:] != events.code[:-1]) | (day[1:] != day[:-1])
    day_count = prefix(first)

    def active_days(days: int | None) -> np.ndarray:
        start, end = w.lo(stream, days), w.hi(stream)
        opens_mid_day = (start < end) & ~pick(first, start)
        return (day_count[end] - day_count[start] + opens_mid_day).astype(np.float64)

    return active_days


def _value_levels(w: RowWindows, declared: EventTypeDeclaration) -> tuple[np.ndarray, np.ndarray]:
    """The value's level in the last week and in the week before: mean for a score, total otherwise."""
    name = declared.maps_to
    value = w.stream(name).value
    known = ~np.isnan(value)
    total = prefix(np.rint(np.where(known, value, 0.0) * VALUE_SCALE).astype(np.int64))
    n_known = prefix(known)
    hi, week, fortnight = w.hi(name), w.lo(name, WEEK_DAYS), w.lo(name, 2 * WEEK_DAYS)

    def level(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        sums = (total[b] - total[a]) / VALUE_SCALE
        if declared.value == "score":
            n = n_known[b] - n_known[a]
            return np.where(n > 0, sums / np.maximum(n, 1), np.nan)
        return sums

    return level(week, hi), level(fortnight, week)


def declared_features(w: RowWindows, config: FeatureConfig, enrolled: np.ndarray) -> dict[str, np.ndarray]:
    """Every feature of the program's own declared types for the rows of `w` (names as in the catalog)."""
    f: dict[str, np.ndarray] = {}
    trend = max(config.windows_days)
    for declared in config.events.own_types():
        name = declared.maps_to
        for days in [*config.windows_days, None]:
            f[f"{name}_{'total' if days is None else f'{days}d'}"] = w.count(name, days)
        f[f"days_since_last_{name}"] = w.days_since_last(name)
        if declared.own_engagement:
            active_days = _active_days(w, name, enrolled)
            for days in config.windows_days:
                f[f"{name}_active_days_{days}d"] = active_days(days)
            f[f"{name}_trend_{trend}d"] = daily_slope(w, name, trend)
        if declared.value != "none":
            recent, before = _value_levels(w, declared)
            f[f"{name}_value_{WEEK_DAYS}d"] = recent
            f[f"{name}_value_change_{WEEK_DAYS}d"] = recent - before
    return f
