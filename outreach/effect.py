"""The causal excursion effect of support on re-engagement, overall and by tier and moderators.

Input: any decisions table with one row per decision point and the columns (names mappable,
see EffectColumns) unit, time, action (0/1), probability (the logged probability of action 1)
and outcome (the proximal outcome, e.g. re-engaged within 7 days: 0/1), plus an optional tier
and numeric moderators / controls. Rows whose probability is 0 or 1 were not randomized (not
available) and are left out; the estimate covers the available decisions only.

The effect is on the outcome's own scale: with a 0/1 outcome, the change in the probability of
re-engaging when support is offered rather than not (percentage points / 100).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict

from outreach.errors import OutreachError
from outreach.policy import Candidate
from outreach.settings import EffectColumns
from outreach.wcls import WclsFit, wcls


class Estimate(BaseModel):
    """One effect coefficient with its robust standard error, confidence interval and p-value."""

    model_config = ConfigDict(frozen=True)

    term: str
    estimate: float
    std_error: float
    lower: float
    upper: float
    p_value: float
    n_decisions: int


class ModeratorFit(BaseModel):
    """The effect as a straight line in one moderator: its value at the moderator's mean, and its slope."""

    model_config = ConfigDict(frozen=True)

    moderator: str
    center: float
    at_center: Estimate
    slope: Estimate


class EffectResult(BaseModel):
    """Everything one effect analysis found; also a BenefitModel for the `benefit` policy."""

    model_config = ConfigDict(frozen=True)

    n_rows: int
    n_units: int
    n_available: int
    n_treated: int
    reference_probability: float
    confidence: float
    small_sample: str
    outcome_mean: float
    overall: Estimate
    by_tier: list[Estimate] = []
    skipped_tiers: list[str] = []
    moderators: list[ModeratorFit] = []
    # Tier effects (or "overall") and the moderators' slopes fitted together; the benefit policy's model.
    joint: list[Estimate] = []
    centers: dict[str, float] = {}

    def expected_benefit(self, candidate: Candidate) -> float:
        """The candidate's fitted effect: their tier's effect plus each moderator's slope x (value - mean)."""
        coef = {e.term: e.estimate for e in self.joint}
        value = coef.get(f"tier={candidate.tier}", coef.get("overall", self.overall.estimate))
        for name, center in self.centers.items():
            if f"slope:{name}" in coef and name in candidate.moderators:
                value += coef[f"slope:{name}"] * (float(candidate.moderators[name]) - center)
        return value


def _column(frame: pd.DataFrame, name: str, role: str) -> pd.Series:
    if name not in frame.columns:
        raise OutreachError(f"decisions: missing column '{name}' (the {role} column)", field=name)
    return frame[name]


def _numeric(series: pd.Series, name: str) -> np.ndarray:
    values = pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(values)
    if bad.any():
        raise OutreachError(f"decisions: column '{name}' needs a number in every row; row {int(np.argmax(bad)) + 1} "
                            "has none", field=name)
    return values


def prepare(frame: pd.DataFrame, columns: EffectColumns, moderators: Sequence[str] = (),
            controls: Sequence[str] = ()) -> pd.DataFrame:
    """The table's available decisions with canonical column names, checked; errors name column and row."""
    for role in ("unit", "time", "action", "probability", "outcome"):
        _column(frame, getattr(columns, role), role)
    for name in (*moderators, *controls):
        _column(frame, name, "moderator" if name in moderators else "control")
    repeated = frame.duplicated([columns.unit, columns.time]).to_numpy()
    if repeated.any():
        raise OutreachError(f"decisions: row {int(np.argmax(repeated)) + 1} repeats the '{columns.unit}' and "
                            f"'{columns.time}' of an earlier row (one row per decision point)", field=columns.time)
    probability = _numeric(frame[columns.probability], columns.probability)
    outside = (probability < 0) | (probability > 1)
    if outside.any():
        raise OutreachError(f"decisions: column '{columns.probability}' must be in [0, 1]; row "
                            f"{int(np.argmax(outside)) + 1} is not", field=columns.probability)
    action = _numeric(frame[columns.action].astype("object").replace({True: 1, False: 0}), columns.action)
    not_binary = ~np.isin(action, (0.0, 1.0))
    if not_binary.any():
        raise OutreachError(f"decisions: column '{columns.action}' must be 0 or 1; row "
                            f"{int(np.argmax(not_binary)) + 1} is not", field=columns.action)
    impossible = ((action == 1) & (probability == 0)) | ((action == 0) & (probability == 1))
    if impossible.any():
        raise OutreachError(f"decisions: row {int(np.argmax(impossible)) + 1} has an action its column "
                            f"'{columns.probability}' says could not happen", field=columns.probability)
    available = (probability > 0) & (probability < 1)
    if not available.any():
        raise OutreachError(f"decisions: no randomized decisions (column '{columns.probability}' is 0 or 1 in "
                            "every row)", field=columns.probability)
    rows = frame.loc[available]
    unit = rows[columns.unit]
    if unit.isna().any():
        raise OutreachError(f"decisions: column '{columns.unit}' is empty in some rows", field=columns.unit)
    out = pd.DataFrame({"unit": unit.astype(str).to_numpy(), "action": action[available],
                        "probability": probability[available],
                        "outcome": _numeric(rows[columns.outcome], columns.outcome)})
    for name in dict.fromkeys((*moderators, *controls)):
        out[name] = _numeric(rows[name], name)
    if columns.tier and columns.tier in frame.columns:
        out["tier"] = rows[columns.tier].astype(str).to_numpy()
    return out


def _estimates(fit: WclsFit, confidence: float, counts: Sequence[int]) -> list[Estimate]:
    lower, upper = fit.interval(confidence)
    se, p = fit.std_error(), fit.p_value()
    return [Estimate(term=t, estimate=float(b), std_error=float(s), lower=float(lo), upper=float(hi),
                     p_value=float(pv), n_decisions=int(n))
            for t, b, s, lo, hi, pv, n in zip(fit.terms, fit.beta, se, lower, upper, p, counts)]


def estimate_effect(frame: pd.DataFrame, columns: EffectColumns = EffectColumns(), moderators: Sequence[str] = (),
                    controls: Sequence[str] = (), reference_probability: float | None = None,
                    confidence: float = 0.95, small_sample: str = "mancl-derouen",
                    min_tier_decisions: int = 30) -> EffectResult:
    """WCLS on a decisions table: the overall effect, by tier, per moderator and jointly."""
    data = prepare(frame, columns, moderators, controls)
    n = len(data)
    ref = float(data["probability"].mean()) if reference_probability is None else reference_probability
    unit = pd.factorize(data["unit"])[0]
    y, a, p = (data[c].to_numpy(dtype=float) for c in ("outcome", "action", "probability"))
    numeric = np.column_stack([data[c].to_numpy() for c in dict.fromkeys((*moderators, *controls))]) \
        if (moderators or controls) else np.empty((n, 0))
    centers = {m: float(data[m].mean()) for m in moderators}
    centred = np.column_stack([data[m].to_numpy() - centers[m] for m in moderators]) if moderators \
        else np.empty((n, 0))

    tiers, skipped = [], []
    if "tier" in data:
        for name, rows in data.groupby("tier", sort=True):
            # A tier needs both actions and some outcome variation: with one outcome value only, the
            # sandwich would claim zero uncertainty.
            informative = rows["action"].nunique() == 2 and rows["outcome"].nunique() > 1
            (tiers if len(rows) >= min_tier_decisions and informative else skipped).append(str(name))
    in_tiers = data["tier"].isin(tiers).to_numpy() if tiers else np.ones(n, dtype=bool)
    dummies = np.column_stack([(data["tier"] == t).to_numpy(dtype=float) for t in tiers]) if tiers \
        else np.empty((n, 0))
    ones = np.ones((n, 1))
    G = np.hstack([ones, dummies[:, 1:], numeric])

    def fit(S: np.ndarray, terms: tuple[str, ...], rows: np.ndarray) -> WclsFit:
        keep = np.any(G[rows] != 0, axis=0) | (np.arange(G.shape[1]) == 0)
        return wcls(y[rows], a[rows], p[rows], unit[rows], G[rows][:, keep], S[rows], terms, ref, small_sample)

    everyone = np.ones(n, dtype=bool)
    overall = _estimates(fit(ones, ("overall",), everyone), confidence, [n])[0]
    by_tier = _estimates(fit(dummies, tuple(tiers), in_tiers), confidence,
                         [int((data["tier"] == t).sum()) for t in tiers]) if tiers else []
    moderator_fits = []
    for j, name in enumerate(moderators):
        line = _estimates(fit(np.hstack([ones, centred[:, [j]]]), (f"at mean {name}", f"slope:{name}"), everyone),
                          confidence, [n, n])
        moderator_fits.append(ModeratorFit(moderator=name, center=centers[name], at_center=line[0], slope=line[1]))
    base, base_terms = (dummies, tuple(f"tier={t}" for t in tiers)) if tiers else (ones, ("overall",))
    joint_terms = (*base_terms, *(f"slope:{m}" for m in moderators))
    joint_rows = in_tiers if tiers else everyone
    joint = _estimates(fit(np.hstack([base, centred]), joint_terms, joint_rows), confidence,
                       [int(joint_rows.sum())] * len(joint_terms))
    return EffectResult(
        n_rows=len(frame), n_units=int(unit.max()) + 1, n_available=n, n_treated=int(a.sum()),
        reference_probability=ref, confidence=confidence, small_sample=small_sample,
        outcome_mean=float(y.mean()), overall=overall, by_tier=by_tier, skipped_tiers=skipped,
        moderators=moderator_fits, joint=joint, centers=centers,
    )
