"""Metrics of one model's risks on a holdout: pooled, per as-of day, and per subgroup."""

from __future__ import annotations

import numpy as np
import pandas as pd

from config import TrainingConfig
from training.fairness import largest_gap, subgroup_table, tpr_gaps
from training.metrics import evaluate

POOLED = "pooled"


def day_slice(day: int) -> str:
    """Name of the slice of rows predicted at one as-of day."""
    return f"day{int(day)}"


def headline_slice(days: np.ndarray, headline_day: int) -> str:
    """The slice whose metrics are the headline: the headline as-of day if present, else pooled."""
    return day_slice(headline_day) if np.any(np.asarray(days) == headline_day) else POOLED


def slice_masks(days: np.ndarray) -> dict[str, np.ndarray]:
    """Boolean row masks: pooled, then one per as-of day in increasing order."""
    days = np.asarray(days)
    masks = {POOLED: np.ones(len(days), dtype=bool)}
    for day in sorted(int(d) for d in np.unique(days)):
        masks[day_slice(day)] = days == day
    return masks


def evaluate_by_slice(y: np.ndarray, p: np.ndarray, days: np.ndarray,
                      config: TrainingConfig = TrainingConfig()) -> dict[str, dict[str, float]]:
    """Headline metrics of risks `p` on every slice (pooled and per as-of day)."""
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    return {name: evaluate(y[m], p[m], config.capacities, config.ece_bins) for name, m in slice_masks(days).items()}


def subgroup_report(y: np.ndarray, p: np.ndarray, days: np.ndarray, groups: pd.DataFrame, threshold: float,
                    slices: tuple[str, ...], config: TrainingConfig = TrainingConfig()
                    ) -> tuple[pd.DataFrame, dict[str, dict[str, float]]]:
    """Subgroup table (slice, attribute, group, rows, positives, auc, tpr, in_gap) and TPR gaps per slice.

    `groups` holds one text column per attribute, aligned to the rows of y and p.
    """
    y = np.asarray(y, dtype=np.float64)
    p = np.asarray(p, dtype=np.float64)
    masks = slice_masks(days)
    attributes = groups.drop(columns=["patient_id"], errors="ignore").reset_index(drop=True)
    tables, gaps = [], {}
    for name in slices:
        mask = masks[name]
        table = subgroup_table(y[mask], p[mask], attributes.loc[mask], threshold,
                               config.subgroup_min_size, config.subgroup_min_positives)
        slice_gaps = tpr_gaps(table)
        slice_gaps["largest"] = largest_gap(slice_gaps)
        gaps[name] = slice_gaps
        tables.append(table.assign(slice=name))
    columns = ["slice", "attribute", "group", "rows", "positives", "auc", "tpr", "in_gap"]
    return pd.concat(tables, ignore_index=True)[columns], gaps
