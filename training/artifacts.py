"""Files a training run leaves behind: SHAP importance, calibration plot, catalog, drift reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from training.metrics import reliability


def catalog_records(specs) -> list[dict]:
    """The feature catalog as JSON-ready records (name, label, unit, level, group, description)."""
    return [
        {"name": s.name, "label": s.label, "unit": s.unit, "level": s.level,
         "group": getattr(s, "group", ""), "description": getattr(s, "description", "")}
        for s in specs
    ]


def importance_table(contribs: np.ndarray, feature_names: list[str], catalog: list[dict]) -> pd.DataFrame:
    """Global SHAP importance per feature: mean |contribution| (log-odds), its share, and mean signed value."""
    by_name = {c["name"]: c for c in catalog}
    mean_abs = np.abs(contribs).mean(axis=0)
    total = mean_abs.sum()
    table = pd.DataFrame({
        "feature": feature_names,
        "label": [by_name.get(f, {}).get("label", f) for f in feature_names],
        "level": [by_name.get(f, {}).get("level", "") for f in feature_names],
        "mean_abs_contribution": mean_abs,
        "share": mean_abs / total if total > 0 else np.zeros_like(mean_abs),
        "mean_contribution": contribs.mean(axis=0),
    })
    return table.sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(drop=True)


def importance_by_level(contribs: np.ndarray, feature_names: list[str], catalog: list[dict]) -> pd.DataFrame:
    """SHAP importance per engagement level: mean |sum of the level's contributions| per row, and its share.

    Contributions are additive, so a level's row sum is that level's push on the log-odds.
    """
    by_name = {c["name"]: c.get("level", "") for c in catalog}
    levels = np.asarray([by_name.get(f, "") or "other" for f in feature_names])
    rows = []
    for level in dict.fromkeys(levels):
        cols = levels == level
        summed = contribs[:, cols].sum(axis=1)
        rows.append({"level": level, "features": int(cols.sum()),
                     "mean_abs_contribution": float(np.abs(summed).mean()),
                     "sum_feature_mean_abs": float(np.abs(contribs[:, cols]).mean(axis=0).sum())})
    table = pd.DataFrame(rows)
    total = table["mean_abs_contribution"].sum()
    table["share"] = table["mean_abs_contribution"] / total if total > 0 else 0.0
    return table.sort_values("mean_abs_contribution", ascending=False, kind="stable").reset_index(drop=True)


def write_beeswarm(path: Path, contribs: np.ndarray, base: np.ndarray, X: np.ndarray, labels: list[str],
                   max_display: int = 20) -> Path:
    """Save a SHAP beeswarm of calibrated log-odds contributions as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import shap

    explanation = shap.Explanation(values=contribs, base_values=base, data=X, feature_names=labels)
    plt.figure()
    shap.plots.beeswarm(explanation, max_display=max_display, show=False)
    fig = plt.gcf()
    plt.gca().set_xlabel("contribution to the calibrated log-odds of dropout")
    fig.suptitle("What drives the dropout risk (SHAP, temporal test set)", fontsize=10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def write_calibration_plot(path: Path, curves: dict[str, tuple[np.ndarray, np.ndarray]], bins: int,
                           title: str) -> Path:
    """Save a reliability diagram (observed rate against mean predicted risk) of several models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, hist) = plt.subplots(2, 1, figsize=(6, 7), height_ratios=(3, 1), sharex=True)
    ax.plot([0, 1], [0, 1], linestyle=":", color="grey", label="perfect calibration")
    for name, (y, p) in curves.items():
        mean_p, mean_y, _ = reliability(y, p, bins)
        ax.plot(mean_p, mean_y, marker="o", label=name)
        hist.hist(p, bins=bins, range=(0, 1), histtype="step", label=name)
    ax.set_ylabel("observed dropout rate")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    hist.set_xlabel("predicted dropout risk")
    hist.set_ylabel("rows")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


_QUANTILES = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)


def _describe(values: np.ndarray, bins: int) -> dict:
    known = values[~np.isnan(values)]
    out: dict = {"rows": int(len(values)), "missing_share": float(1 - len(known) / len(values)) if len(values) else 0.0}
    if len(known) == 0:
        return {**out, "mean": None, "std": None, "quantiles": {}, "histogram": {"edges": [], "counts": []}}
    edges = np.unique(np.quantile(known, np.linspace(0, 1, bins + 1)))
    if len(edges) < 2:
        edges = np.array([edges[0], edges[0]])
    counts = np.histogram(known, bins=edges)[0] if edges[0] < edges[-1] else np.array([len(known)])
    return {
        **out,
        "mean": float(known.mean()),
        "std": float(known.std()),
        "quantiles": {f"{q:g}": float(v) for q, v in zip(_QUANTILES, np.quantile(known, _QUANTILES))},
        "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
    }


def feature_distributions(frame: pd.DataFrame, feature_names: list[str], bins: int,
                          day_column: str = "as_of_day") -> dict:
    """Per feature, pooled and per as-of day: missing share, mean, std, quantiles, quantile-edge histogram."""
    days = sorted(int(d) for d in frame[day_column].unique()) if day_column in frame.columns else []
    out: dict = {"bins": bins, "rows": int(len(frame)), "features": {}}
    for name in feature_names:
        values = frame[name].to_numpy(dtype=np.float64, na_value=np.nan)
        entry = {"pooled": _describe(values, bins)}
        if days:
            day_values = frame[day_column].to_numpy()
            entry["by_as_of_day"] = {str(d): _describe(values[day_values == d], bins) for d in days}
        out["features"][name] = entry
    return out


def json_ready(value):
    """Replace NaN/inf by None and numpy scalars by Python ones, recursively, for strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value
