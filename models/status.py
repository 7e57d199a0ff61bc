"""Fit for purpose: whether a patient is one the model was trained to score, decided from their features.

The model learned from patients who were still engaged at the as-of time: own engagement within the
label's `engaged_within_days` before it (features/labels.py). A patient with no own engagement yet, or
whose last own engagement is older than that window (already lapsed under the label rule), is outside
what the model has seen: they get the status "not_eligible", a reason code and words, and no support
trigger from the model, instead of a risk to act on. The rule reads the model's own feature columns, so
/score, /triage, the clinician page and batch scoring agree for the same features.
"""

from __future__ import annotations

import numpy as np

from models.loaded import LoadedModel
from models.results import StatusReason

SCORED = "scored"
NOT_ELIGIBLE = "not_eligible"
# The features the rule reads: own-engagement days since enrolment, and days since the last own engagement.
ACTIVE_DAYS = "active_days_total"
LAST_ENGAGEMENT = "days_since_last_engagement"


def no_engagement_yet() -> StatusReason:
    return StatusReason("no_engagement_yet", "Not scored: the patient has not used the program yet, and the model "
                                             "only scores patients who have started")


def lapsed(window_days: int) -> StatusReason:
    return StatusReason("lapsed", f"Not scored: no use of the program in the last {window_days} days, so the "
                                  "patient has already lapsed under the dropout definition; reach out directly")


def fit_statuses(X: np.ndarray, model: LoadedModel) -> list[StatusReason | None]:
    """Per row of X (the model's columns): None where the model is fit to score the patient, else why not.

    A value that is not known (NaN) does not make a patient ineligible; a model without these
    features scores every patient.
    """
    names = model.feature_names
    out: list[StatusReason | None] = [None] * len(X)
    window = model.label_config.engaged_within_days
    with np.errstate(invalid="ignore"):
        never = X[:, names.index(ACTIVE_DAYS)] == 0 if ACTIVE_DAYS in names else np.zeros(len(X), dtype=bool)
        gone = (X[:, names.index(LAST_ENGAGEMENT)] >= window if LAST_ENGAGEMENT in names
                else np.zeros(len(X), dtype=bool)) & ~never
    if never.any() or gone.any():
        first, late = no_engagement_yet(), lapsed(window)
        for i in np.flatnonzero(never).tolist():
            out[i] = first
        for i in np.flatnonzero(gone).tolist():
            out[i] = late
    return out
