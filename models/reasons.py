"""Reasons in a clinician's words and the support decision, from a model's contributions.

The words come from the feature catalog (`features/catalog.py`), so a feature cannot be
scored without its label and phrases.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from features.catalog import NOT_A_REASON_WHEN_MISSING, THEME_WORDS, FeatureSpec
from features.catalog import spec as catalog_spec
from models.loaded import LoadedModel
from models.results import Reason, SupportDecision


# Sentences by what they depend on (`FeatureSpec.words_key`): most new values are printed like a value already worded.
_WORDED: dict[tuple[str, object, bool], str] = {}
_WORDED_MAX = 1 << 16


@lru_cache(maxsize=1 << 16)
def sentence(name: str, value: float | None, raises: bool) -> str:
    """A clinician's sentence for one value of feature `name` (None: not known) and the way it moves risk.

    -0.0 is worded as 0.0: the two are one key of this cache, so one of them must stand for both.
    """
    spec = catalog_spec(name)
    if value is not None:
        value += 0.0  # (-0.0 + 0.0 is 0.0)
    key = (name, None if value is None else spec.words_key(value), raises)
    words = _WORDED.get(key)
    if words is None:
        if len(_WORDED) >= _WORDED_MAX:
            _WORDED.clear()
        words = _WORDED[key] = _sentence(spec, value, raises)
    return words


def _sentence(spec: FeatureSpec, value: float | None, raises: bool) -> str:
    words = spec.describe(math.nan if value is None else value)
    if value is None and words.lower() == "not recorded":
        words = f"{spec.label}: not recorded"
    return f"{words} {'raises' if raises else 'lowers'} risk"


def forget_sentences() -> None:
    """Empty both sentence caches (a benchmark times wording new values with it)."""
    sentence.cache_clear()
    _WORDED.clear()


def reason_lists(specs: Sequence[FeatureSpec], top: list[list[int]], values: list[list[float]],
                 sizes: list[list[float]], keep_zero: bool = False) -> list[list[Reason]]:
    """Per row, the reason for each (column of `specs`, value (NaN: not known), contribution) picked, in that
    order; zero contributions are left out unless `keep_zero` (a full breakdown lists every feature).

    One loop with the specs' words looked up once, because a batch makes thousands of reasons.
    """
    names = [spec.name for spec in specs]
    labels = [spec.label for spec in specs]
    out = []
    for columns, row_values, row_sizes in zip(top, values, sizes):
        reasons = []
        for j, value, contribution in zip(columns, row_values, row_sizes):
            if keep_zero or contribution != 0.0:
                known = None if value != value else value
                reasons.append(Reason(names[j], labels[j], known, contribution,
                                      sentence(names[j], known, contribution > 0)))
        out.append(reasons)
    return out


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


@dataclass(frozen=True)
class SupportWording:
    """What the support decision's words and priority take from the model: its trigger, top tier and horizon."""

    trigger_risk: float
    top_tier: str
    # " within N days" and the trigger as a percentage ("NN%").
    within: str
    threshold: str


@lru_cache(maxsize=64)
def _wording(horizon_days: int, trigger_risk: float, top_tier: str) -> SupportWording:
    return SupportWording(trigger_risk, top_tier, f" within {horizon_days} days", f"{trigger_risk:.0%}")


def support_wording(model: LoadedModel) -> SupportWording:
    """The model's part of its support decisions (made once per model, not once per patient)."""
    return _wording(model.horizon_days, model.trigger_risk, model.tiers[0][0])


def support_decision(model: LoadedModel, risk: float, tier: str, reasons: list[Reason],
                     has_coach: float, wording: SupportWording | None = None) -> SupportDecision:
    """Whether to bring in human support now, how soon, and why (the first reason raising risk).

    `wording` is `support_wording(model)`, passed by callers deciding many patients.
    """
    w = wording or support_wording(model)
    if risk < w.trigger_risk:
        return SupportDecision(False, "routine", f"{risk:.0%} risk of dropping out{w.within}, below the "
                                                 f"{w.threshold} support threshold: no outreach now")
    who = "Alert the patient's coach" if has_coach == 1.0 else "Offer the patient human support"
    raising = next((r for r in reasons if r.contribution > 0), None)
    because = f"; main reason: {raising.sentence}" if raising else ""
    return SupportDecision(True, "urgent" if tier == w.top_tier else "soon",
                           f"{who}: {risk:.0%} risk of dropping out{w.within}, at or above the {w.threshold} "
                           f"threshold{because}")


@dataclass(frozen=True)
class ReasonGroup:
    """Related reasons said once: one theme (inactivity, symptoms, coach contact, ...), its total pull on the
    risk, the sentence of its strongest member and the other members' sentences."""

    theme: str
    title: str
    sentence: str
    contribution: float
    related: tuple[str, ...]

    @property
    def raises(self) -> bool:
        """Whether the theme as a whole raises the risk."""
        return self.contribution > 0


def actionable(r: Reason) -> bool:
    """Whether a reason can be shown to a clinician: a missing covariate (education not recorded) never is."""
    try:
        theme = catalog_spec(r.feature).theme
    except KeyError:
        return True
    return not (r.value is None and theme in NOT_A_REASON_WHEN_MISSING)


def group_reasons(reasons: list[Reason], limit: int) -> list[ReasonGroup]:
    """Reasons grouped by theme, strongest theme first, at most `limit` themes.

    A theme's pull is the sum of its members' contributions; it is worded by its strongest member whose
    direction agrees with the sum (so "No activity for 12 days" stands for the four inactivity signs).
    """
    by_theme: dict[str, list[Reason]] = {}
    for r in reasons:
        if not actionable(r) or r.contribution == 0.0:
            continue
        try:
            theme = catalog_spec(r.feature).theme
        except KeyError:
            theme = "other"
        by_theme.setdefault(theme, []).append(r)
    groups = []
    for theme, members in by_theme.items():
        total = sum(m.contribution for m in members)
        agreeing = sorted((m for m in members if (m.contribution > 0) == (total > 0)),
                          key=lambda m: -abs(m.contribution))
        lead = agreeing[0] if agreeing else max(members, key=lambda m: abs(m.contribution))
        words = lead.sentence.rsplit(" raises risk", 1)[0].rsplit(" lowers risk", 1)[0]
        groups.append(ReasonGroup(theme, THEME_WORDS.get(theme, THEME_WORDS["other"]), words, total,
                                  tuple(m.sentence for m in members if m is not lead and m.value is not None)))
    groups.sort(key=lambda g: -abs(g.contribution))
    return groups[:limit]
