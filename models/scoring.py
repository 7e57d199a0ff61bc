"""The scoring core: a feature matrix and a loaded model in; per patient risk, tier, reasons and support out.

The service (`serving/`), the clinician page and batch scoring (`engines/`) all score through
`score_matrix` (or `score_frame` for a frame of computed features), so a patient gets the same
answer whichever way they are scored. `explain_row` is the full breakdown of one patient.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from scipy.special import expit

from features.catalog import LEVELS
from models.loaded import LoadedModel
from models.reasons import coach_flags, reason_lists, support_decision, support_wording, top_indices
from models.results import LevelTotal, PatientRisk, Reason, RiskExplanation, SupportDecision
from models.status import NOT_ELIGIBLE, fit_statuses


def model_matrix(features: pd.DataFrame, feature_names: Sequence[str]) -> np.ndarray:
    """The model's columns of a feature frame, in the model's order, as floats (NaN: not known)."""
    missing = [name for name in feature_names if name not in features.columns]
    if missing:
        raise ValueError(f"the features lack column(s) the model needs: {', '.join(missing)}")
    return features.loc[:, list(feature_names)].to_numpy(dtype=np.float64, na_value=np.nan)


def score_matrix(X: np.ndarray, model: LoadedModel, patient_ids: Sequence[str], as_of: Sequence[datetime],
                 top_reasons: int) -> list[PatientRisk]:
    """Risk, tier, the `top_reasons` largest reasons and the support decision for each row of X.

    X holds the model's columns (`model.feature_names`) in order; `patient_ids` and `as_of` are
    row-aligned with it and carried into the results.
    """
    contributions, base = model.contributions(X)
    risk = expit(contributions.sum(axis=1) + base)
    top = top_indices(contributions, top_reasons)
    values = np.take_along_axis(X, top, axis=1).tolist()
    sizes = np.take_along_axis(contributions, top, axis=1).tolist()
    coach = coach_flags(model, X).tolist()
    risks, tiers = risk.tolist(), model.tier_of(risk).tolist()
    reasons = reason_lists(model.specs, top.tolist(), values, sizes)
    ref, wording = model.ref, support_wording(model)
    unfit = fit_statuses(X, model)
    out = []
    for i, patient_id in enumerate(patient_ids):
        why_not = unfit[i]
        if why_not is None:
            out.append(PatientRisk(patient_id, as_of[i], risks[i], tiers[i], reasons[i],
                                   support_decision(model, risks[i], tiers[i], reasons[i], coach[i], wording), ref))
        else:
            out.append(PatientRisk(patient_id, as_of[i], risks[i], tiers[i], reasons[i],
                                   SupportDecision(False, "routine", why_not.words), ref, NOT_ELIGIBLE, why_not))
    return out


def score_frame(features: pd.DataFrame, model: LoadedModel, top_reasons: int) -> list[PatientRisk]:
    """`score_matrix` for a frame of computed features with `patient_id` and `as_of` columns."""
    X = model_matrix(features, model.feature_names)
    return score_matrix(X, model, list(features["patient_id"]), list(features["as_of"]), top_reasons)


def explain_row(x: np.ndarray, model: LoadedModel, patient_id: str, as_of: datetime) -> RiskExplanation:
    """Every feature's contribution for one patient (largest first), and their sums by engagement level."""
    X = np.asarray(x, dtype=np.float64).reshape(1, -1)
    contributions, base = model.contributions(X)
    c, b = contributions[0], float(base[0])
    risks = expit(contributions.sum(axis=1) + base)
    risk, tier = float(risks[0]), str(model.tier_of(risks)[0])
    order = top_indices(contributions, len(c))[0].tolist()
    reasons: list[Reason] = reason_lists(model.specs, [order], [X[0, order].tolist()], [c[order].tolist()],
                                         keep_zero=True)[0]
    levels = [LevelTotal(level, float(c[model.levels == level].sum())) for level in LEVELS]
    why_not = fit_statuses(X, model)[0]
    if why_not is None:
        support = support_decision(model, risk, tier, reasons, float(coach_flags(model, X)[0]))
        return RiskExplanation(patient_id, as_of, risk, tier, b, float(b + c.sum()), reasons, levels, support,
                               model.ref)
    return RiskExplanation(patient_id, as_of, risk, tier, b, float(b + c.sum()), reasons, levels,
                           SupportDecision(False, "routine", why_not.words), model.ref, NOT_ELIGIBLE, why_not)
