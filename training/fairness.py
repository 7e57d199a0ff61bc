"""Subgroup performance: who the model serves well and who it misses at the operating threshold."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from training.metrics import roc_auc

UNKNOWN = "unknown"


def age_band(age: pd.Series, edges: tuple[int, ...]) -> pd.Series:
    """Age bands from lower edges: (25, 35) gives '<25', '25-34', '35+'; missing ages 'unknown'."""
    edges = tuple(sorted(edges))
    labels = [f"<{edges[0]}"] + [f"{lo}-{hi - 1}" for lo, hi in zip(edges, edges[1:])] + [f"{edges[-1]}+"]
    values = pd.to_numeric(age, errors="coerce").to_numpy(dtype=np.float64)
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="right")
    out = np.asarray(labels, dtype=object)[np.minimum(idx, len(labels) - 1)]
    out[np.isnan(values)] = UNKNOWN
    return pd.Series(out, index=age.index, dtype="str")


def subgroup_frame(patients: pd.DataFrame, attributes: tuple[str, ...], age_edges: tuple[int, ...]) -> pd.DataFrame:
    """One row per patient: patient_id and one text column per subgroup attribute present in `patients`."""
    out = pd.DataFrame({"patient_id": patients["patient_id"].astype("str")})
    for attribute in attributes:
        if attribute == "age_band":
            if "age" in patients.columns:
                out[attribute] = age_band(patients["age"], age_edges)
            continue
        if attribute not in patients.columns:
            continue
        column = patients[attribute]
        if attribute == "human_support" or pd.api.types.is_bool_dtype(column):
            text = column.map({True: "yes", False: "no"})
        else:
            text = column.astype("str")
        out[attribute] = text.where(column.notna(), UNKNOWN).astype("str")
    return out


def subgroup_table(y: np.ndarray, p: np.ndarray, groups: pd.DataFrame, threshold: float,
                   min_size: int, min_positives: int) -> pd.DataFrame:
    """Per attribute and group: rows, positives, AUC, TPR at `threshold`, and whether it enters the gap."""
    y = np.asarray(y, dtype=np.float64)
    flagged = np.asarray(p, dtype=np.float64) >= threshold
    rows = []
    for attribute in groups.columns:
        values = groups[attribute].to_numpy()
        for group in sorted(pd.unique(values)):
            mask = values == group
            n = int(mask.sum())
            positives = int(y[mask].sum())
            tpr = float(flagged[mask & (y == 1)].mean()) if positives else math.nan
            rows.append({
                "attribute": attribute,
                "group": str(group),
                "rows": n,
                "positives": positives,
                "auc": roc_auc(y[mask], np.asarray(p)[mask]),
                "tpr": tpr,
                "in_gap": bool(n >= min_size and positives >= min_positives and group != UNKNOWN),
            })
    return pd.DataFrame(rows, columns=["attribute", "group", "rows", "positives", "auc", "tpr", "in_gap"])


def tpr_gaps(table: pd.DataFrame) -> dict[str, float]:
    """Largest minus smallest TPR per attribute over the groups large enough to count (NaN if < 2)."""
    gaps = {}
    for attribute, part in table.groupby("attribute", sort=False):
        counted = part.loc[part["in_gap"], "tpr"].dropna()
        gaps[str(attribute)] = float(counted.max() - counted.min()) if len(counted) >= 2 else math.nan
    return gaps


def largest_gap(gaps: dict[str, float]) -> float:
    """The largest TPR gap over attributes (0.0 when no attribute has two countable groups)."""
    known = [g for g in gaps.values() if not math.isnan(g)]
    return max(known) if known else 0.0
