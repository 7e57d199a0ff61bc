"""Assemble the engagement report: every element overall and by subgroup, small cells suppressed.

The result is a plain JSON-ready dict; the HTML and its figures are drawn from it alone, so every
number the HTML shows is in the JSON.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import binomtest

from config import EventsConfig, LabelConfig, ProgramConfig, ReportConfig
from features.covariates import subgroup_frame
from reporting import elements
from reporting.elements import LEVEL_MEASURES
from reporting.subgroups import (
    NOT_RECORDED,
    SUBGROUP_LABELS,
    level_order,
    suppress_shares,
    suppress_sizes,
)
from reporting.survival import median_survival, survival_on_grid

SHARE_DIGITS = 4
VALUE_DIGITS = 1


def build_report(
    patients: pd.DataFrame,
    events: pd.DataFrame,
    data_end: pd.Timestamp,
    program: ProgramConfig = ProgramConfig(),
    labels: LabelConfig = LabelConfig(),
    config: ReportConfig = ReportConfig(),
    sources: dict[str, str] | None = None,
    written_at: pd.Timestamp | None = None,
    events_config: EventsConfig = EventsConfig(),
) -> dict:
    """Return the engagement report for a cohort as a JSON-ready dict of aggregates only.

    `written_at` (when the report was made) is shown on the page; without it the page says nothing of it.
    """
    usage = elements.patient_usage(patients, events, data_end, program, labels, config, events_config)
    groups = subgroup_frame(patients, config.subgroups, config.age_bands, NOT_RECORDED)
    groups = groups.set_index("patient_id").reindex(usage["patient_id"])
    # Identifiers are not needed past this point (and slow every subset).
    usage = usage.drop(columns="patient_id")
    m = config.min_cell
    window = 7 * config.weeks
    enrolled = pd.to_datetime(patients.loc[patients["enrolled_at"] <= data_end, "enrolled_at"])
    cohort = {
        "n_enrolled": _sizes([len(usage)], m)[0],
        "enrolment_months": _month_span(enrolled),
        "follow_up_days": _summaries([elements.summary(usage["follow_up_days"])], m)[0],
        "n_observed_window": _sizes([int(usage["window_observed"].sum())], m)[0],
        "excluded": elements.excluded_counts(patients, events, data_end),
    }
    km = elements.dropout_survival(usage, config.confidence)
    assessable = usage[usage["dropout_assessable"]]
    dropout = _dropout_summary(km, config)
    dropout["n"] = _sizes([len(assessable)], m)[0]
    dropout["events"] = _shares([elements.share(assessable["dropout_event"])], m, config.confidence)[0]
    dropout["n_not_assessable_users"] = _sizes([int((usage["used"] & ~usage["dropout_assessable"]).sum())], m)[0]
    report = {
        "title": "Engagement report",
        "data_end": data_end.isoformat(),
        "written_at": written_at.isoformat() if written_at is not None else None,
        "sources": sources or {},
        "settings": {
            "min_cell": m,
            "weeks": config.weeks,
            "window_days": window,
            "uptake_days": config.uptake_days,
            "confidence": config.confidence,
            "survival_days": list(config.survival_days),
            "subgroup_survival_day": config.subgroup_survival_day,
            "subgroup_weeks": list(config.subgroup_weeks),
            "age_bands": list(config.age_bands),
            "dropout_definition": labels.definition,
            "inactivity_days": labels.horizon_days,
        },
        "recommended_use": {
            "sessions_per_week": program.sessions_per_week,
            "modules_per_week": program.modules_per_week,
            "core_modules": program.core_modules,
        },
        "cohort": cohort,
        "uptake": _suppress_element(elements.uptake(usage), m, config.confidence),
        "level_of_use": {
            **_suppress_level(elements.level_of_use(usage), m),
            "histograms": {
                name: _histogram(usage.loc[usage["window_observed"], name], config) for name in LEVEL_MEASURES
            },
        },
        "duration": {
            "weekly": _suppress_weekly([elements.weekly_activity(usage, config.weeks)], m, config.confidence)[0],
            "dropout": dropout,
        },
        "completion": _shares([elements.completion(usage)], m, config.confidence)[0],
        "subgroups": [
            _breakdown(usage, groups[name], name, config)
            for name in config.subgroups
            if name in groups.columns
        ],
        "subgroups_not_provided": [name for name in config.subgroups if name not in groups.columns],
    }
    return report


def _breakdown(usage: pd.DataFrame, labels: pd.Series, name: str, config: ReportConfig) -> dict:
    """Every element for each level of one subgroup, suppressed together across the levels."""
    m = config.min_cell
    values = labels.to_numpy(dtype=object)
    levels = level_order(name, sorted(set(values)), config)
    parts = [usage[values == level] for level in levels]
    up = [elements.uptake(p) for p in parts]
    level = [elements.level_of_use(p) for p in parts]
    weekly = _suppress_weekly([elements.weekly_activity(p, config.weeks) for p in parts], m, config.confidence)
    kms = [elements.dropout_survival(p, config.confidence) for p in parts]
    km_n = _sizes([int(p["dropout_assessable"].sum()) for p in parts], m)
    any_use = _shares([u["any_use"] for u in up], m, config.confidence)
    within = _shares([u["within_days"] for u in up], m, config.confidence)
    first = _summaries([u["days_to_first_use"] for u in up], m)
    completion = _shares([elements.completion(p) for p in parts], m, config.confidence)
    measures = {k: _summaries([lv[k] for lv in level], m) for k in LEVEL_MEASURES}
    n_window = _sizes([int(p["window_observed"].sum()) for p in parts], m)
    rows = []
    for i, lv in enumerate(levels):
        dropout = _dropout_summary(kms[i], config) if km_n[i] is not None else _dropout_summary(kms[i].iloc[:0], config)
        dropout["n"] = km_n[i]
        rows.append(
            {
                "level": lv,
                "n_enrolled": _sizes([len(p) for p in parts], m)[i],
                "uptake": {"any_use": any_use[i], "within_days": within[i], "days_to_first_use": first[i]},
                "n_observed_window": n_window[i],
                "level_of_use": {k: measures[k][i] for k in LEVEL_MEASURES},
                "completion": completion[i],
                "weekly": weekly[i],
                "dropout": dropout,
            }
        )
    return {"variable": name, "label": SUBGROUP_LABELS.get(name, name), "levels": rows}


def _dropout_summary(km: pd.DataFrame, config: ReportConfig) -> dict:
    """Median, survival at the tabulated days and the daily curve, cut where fewer than min_cell are at risk."""
    m = config.min_cell
    last_day = int(km["time"].max()) if not km.empty else -1
    grid = survival_on_grid(km, np.arange(0, last_day + 1))
    too_few = np.flatnonzero(grid["n_at_risk"].to_numpy() < m)
    grid = grid.iloc[: too_few[0]] if too_few.size else grid
    curve = [_km_point(row) for row in grid.itertuples(index=False)]
    curve_end = curve[-1]["day"] if curve else None
    shown = km[km["time"] <= curve_end] if curve else km.iloc[:0]
    median = median_survival(shown)
    at_days = []
    for day in sorted(set(config.survival_days) | {config.subgroup_survival_day}):
        if curve_end is None or day > curve_end:
            at_days.append({"day": day, "n_at_risk": None, "survival": None, "lower": None, "upper": None})
        else:
            at_days.append(curve[day])
    return {"median_days": median, "at_days": at_days, "curve": curve, "curve_end_day": curve_end}


def _km_point(row) -> dict:
    return {
        "day": int(row.time),
        "n_at_risk": int(row.n_at_risk),
        "survival": round(float(row.survival), SHARE_DIGITS),
        "lower": round(float(row.lower), SHARE_DIGITS),
        "upper": round(float(row.upper), SHARE_DIGITS),
    }


def _sizes(sizes: list[int], min_cell: int) -> list[int | None]:
    """Group sizes across the levels of one breakdown, None where suppressed."""
    mask = suppress_sizes(np.asarray(sizes), min_cell)
    return [None if hide else int(n) for n, hide in zip(sizes, mask)]


def _shares(stats: list[dict], min_cell: int, confidence: float) -> list[dict]:
    """Share dicts across the levels of one breakdown with small cells suppressed; each shown share
    carries its Wilson score interval (lower, upper) at `confidence`."""
    sizes = np.array([s["n"] for s in stats])
    counts = np.array([s["count"] for s in stats])
    size_mask = suppress_sizes(sizes, min_cell)
    share_mask = suppress_shares(sizes, counts, size_mask, min_cell)
    out = []
    for s, hide_n, hide in zip(stats, size_mask, share_mask):
        hidden = bool(hide) or s["share"] is None
        lower, upper = (None, None) if hidden else _wilson(s["count"], s["n"], confidence)
        out.append(
            {
                "n": None if hide_n else s["n"],
                "count": None if hidden else s["count"],
                "share": None if hidden else round(s["share"], SHARE_DIGITS),
                "lower": lower,
                "upper": upper,
                "suppressed": bool(hide),
            }
        )
    return out


def _wilson(count: int, n: int, confidence: float) -> tuple[float, float]:
    """Wilson score interval of count / n (scipy), rounded like the shares."""
    ci = binomtest(int(count), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return round(float(ci.low), SHARE_DIGITS), round(float(ci.high), SHARE_DIGITS)


def _summaries(stats: list[dict], min_cell: int) -> list[dict]:
    """Median/IQR dicts across the levels of one breakdown, suppressed where the group is small."""
    mask = suppress_sizes(np.array([s["n"] for s in stats]), min_cell)
    out = []
    for s, hide in zip(stats, mask):
        if hide:
            out.append({"n": None, "median": None, "q1": None, "q3": None, "suppressed": True})
        else:
            values = {k: _round(v, VALUE_DIGITS) for k, v in s.items() if k != "n"}
            out.append({**values, "n": s["n"], "suppressed": False})
    return out


def _suppress_element(uptake: dict, min_cell: int, confidence: float) -> dict:
    return {
        "any_use": _shares([uptake["any_use"]], min_cell, confidence)[0],
        "within_days": _shares([uptake["within_days"]], min_cell, confidence)[0],
        "days_to_first_use": _summaries([uptake["days_to_first_use"]], min_cell)[0],
    }


def _suppress_level(level: dict, min_cell: int) -> dict:
    return {k: _summaries([v], min_cell)[0] for k, v in level.items()}


def _suppress_weekly(per_level: list[list[dict]], min_cell: int, confidence: float) -> list[list[dict]]:
    """Weekly shares for each level of a breakdown, suppressed across the levels week by week."""
    weeks = len(per_level[0])
    out = [[{"week": w + 1} for w in range(weeks)] for _ in per_level]
    for w in range(weeks):
        for key in ("active", "dose_met"):
            shown = _shares([rows[w][key] for rows in per_level], min_cell, confidence)
            for i, s in enumerate(shown):
                out[i][w][key] = s
    return out


def _histogram(values: pd.Series, config: ReportConfig) -> dict:
    """Binned distribution of per-patient values: counts per bin, the last bin open, small bins hidden."""
    values = values.to_numpy(dtype=float)
    n = int(values.size)
    if n < config.min_cell:
        return {"n": None, "width": None, "lower_edges": [], "counts": [], "suppressed": True}
    top = float(np.quantile(values, 0.99))
    width = max(1.0, float(np.ceil(top / config.histogram_bins)))
    if width > 5:
        width = float(np.ceil(width / 5) * 5)
    n_bins = int(top // width) + 1
    index = np.minimum((values // width).astype(int), n_bins - 1)
    counts = np.bincount(index, minlength=n_bins)
    hidden = (counts > 0) & (counts < config.min_cell)
    return {
        "n": n,
        "width": width,
        "lower_edges": [round(k * width, VALUE_DIGITS) for k in range(n_bins)],
        "counts": [None if h else int(c) for c, h in zip(counts, hidden)],
        "suppressed": False,
    }


def _month_span(enrolled: pd.Series) -> dict[str, str | None]:
    if enrolled.empty:
        return {"first": None, "last": None}
    months = enrolled.dt.strftime("%Y-%m")
    return {"first": months.min(), "last": months.max()}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(float(value), digits)
