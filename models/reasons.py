"""Reasons in a clinician's words and the support decision, from a model's contributions.

The words come from the feature catalog (`features/catalog.py`), so a feature cannot be
scored without its label and phrases.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from features.catalog import FeatureSpec
from features.catalog import spec as catalog_spec
from models.loaded import LoadedModel
from models.results import Reason, SupportDecision


@lru_cache(maxsize=1 << 16)
def sentence(name: str, value: float | None, raises: bool) -> str:
    """A clinician's sentence for one value of feature `name` (None: not known) and the way it moves risk."""
    spec = catalog_spec(name)
    words = spec.describe(math.nan if value is None else value)
    if value is None and words.lower() == "not recorded":
        words = f"{spec.label}: not recorded"
    return f"{words} {'raises' if raises else 'lowers'} risk"


def reason(spec: FeatureSpec, value: float, contribution: float) -> Reason:
    """The reason for one feature value (NaN: not known) and its contribution."""
    known = None if value != value else value
    return Reason(spec.name, spec.label, known, contribution, sentence(spec.name, known, contribution > 0))


def top_indices(contributions: np.ndarray, k: int) -> np.ndarray:
    """Per row, the columns of the k largest absolute contributions, largest first."""
    n, width = contributions.shape
    k = min(k, width)
    if k <= 0:
        return np.empty((n, 0), dtype=np.int64)
    size = np.abs(contributions)
    part = np.argpartition(-size, k - 1, axis=1)[:, :k] if k < width else np.tile(np.arange(width), (n, 1))
    order = np.argsort(-np.take_along_axis(size, part, axis=1), axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1)


def coach_flags(model: LoadedModel, X: np.ndarray) -> np.ndarray:
    """Per row, whether the patient has a coach (1.0), has none (0.0) or it is not known (NaN)."""
    column = model.coach_column
    return X[:, column] if column is not None else np.full(len(X), np.nan)


def support_decision(model: LoadedModel, risk: float, tier: str, reasons: list[Reason],
                     has_coach: float) -> SupportDecision:
    """Whether to bring in human support now, how soon, and why (the first reason raising risk)."""
    within = f" within {model.horizon_days} days"
    threshold = f"{model.trigger_risk:.0%}"
    if risk < model.trigger_risk:
        return SupportDecision(False, "routine", f"{risk:.0%} risk of dropping out{within}, below the {threshold} "
                                                 "support threshold: no outreach now")
    who = "Alert the patient's coach" if has_coach == 1.0 else "Offer the patient human support"
    raising = next((r for r in reasons if r.contribution > 0), None)
    because = f"; main reason: {raising.sentence}" if raising else ""
    return SupportDecision(True, "urgent" if tier == model.tiers[0][0] else "soon",
                           f"{who}: {risk:.0%} risk of dropping out{within}, at or above the {threshold} "
                           f"threshold{because}")
