"""Subgroups of a cohort (sex, age band, ...) and small-cell suppression of what is shown about them."""

from __future__ import annotations

import numpy as np

from config import ReportConfig
from features.covariates import age_band_labels

NOT_RECORDED = "not recorded"
SUBGROUP_LABELS: dict[str, str] = {
    "sex": "Sex",
    "age_band": "Age band (years)",
    "education": "Education",
    "human_support": "Human support",
    "program": "Program",
    "referral_source": "Referral source",
}


def level_order(name: str, levels: list[str], config: ReportConfig = ReportConfig()) -> list[str]:
    """Order the levels of a subgroup for display: bands in age order, others alphabetically, 'not recorded' last."""
    if name == "age_band":
        order = age_band_labels(config.age_bands)
        known = [lv for lv in order if lv in levels]
    else:
        known = sorted(lv for lv in levels if lv != NOT_RECORDED)
    return known + [NOT_RECORDED] * (NOT_RECORDED in levels)


def small(counts: np.ndarray, min_cell: int) -> np.ndarray:
    """True where a count is between 1 and min_cell - 1: too small to show."""
    counts = np.asarray(counts, dtype=float)
    return (counts > 0) & (counts < min_cell)


def complementary(counts: np.ndarray, suppressed: np.ndarray, min_cell: int) -> np.ndarray:
    """Widen a suppression mask over the cells of one breakdown so that the hidden cells cannot be
    recovered by subtraction from the shown total: when any cell is hidden, at least two are, and
    together they hold none or at least min_cell patients (adding the smallest shown cells first)."""
    counts = np.asarray(counts, dtype=float)
    mask = np.asarray(suppressed, dtype=bool).copy()
    if not mask.any():
        return mask
    order = np.argsort(counts, kind="stable")
    for i in order:
        hidden = counts[mask].sum()
        if mask.sum() >= 2 and (hidden >= min_cell or hidden == 0):
            break
        mask[i] = True
    return mask


def suppress_sizes(sizes: np.ndarray, min_cell: int) -> np.ndarray:
    """Mask of groups whose size must not be shown (small groups and their complements)."""
    return complementary(sizes, small(sizes, min_cell), min_cell)


def suppress_shares(sizes: np.ndarray, counts: np.ndarray, size_mask: np.ndarray, min_cell: int) -> np.ndarray:
    """Mask of shares (count of n) not to show: the group is hidden, or the count or n - count is small."""
    sizes = np.asarray(sizes, dtype=float)
    counts = np.asarray(counts, dtype=float)
    hidden = np.asarray(size_mask, dtype=bool)
    numerator = complementary(counts, small(counts, min_cell) | hidden, min_cell)
    rest = complementary(sizes - counts, small(sizes - counts, min_cell) | hidden, min_cell)
    return numerator | rest
