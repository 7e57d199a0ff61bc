"""What the scoring core gives per patient: typed results, in the shape of the service's answers.

Plain slotted dataclasses: thousands are built per batch, so they are kept cheap to make (not
frozen), and their field order is the order of the JSON the service sends.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from models.loaded import ModelRef


@dataclass(slots=True)
class Reason:
    """One feature's part in a score, worded for a clinician."""

    feature: str
    label: str
    # The feature's value; None when it is not known.
    value: float | None
    # Change in log-odds of dropout from this feature.
    contribution: float
    sentence: str


@dataclass(slots=True)
class SupportDecision:
    """Whether to bring in human support now, how soon ("urgent", "soon" or "routine"), and why."""

    trigger: bool
    priority: str
    why: str


@dataclass(slots=True)
class StatusReason:
    """Why a patient is not scored: a stable code and a clinician's sentence (models/status.py)."""

    code: str
    words: str


@dataclass(slots=True)
class PatientRisk:
    """One patient's risk, tier, top reasons (largest first) and support decision."""

    patient_id: str
    as_of: datetime
    # Calibrated probability of dropout within the horizon.
    risk: float
    tier: str
    reasons: list[Reason]
    support: SupportDecision
    model: ModelRef
    # "scored", or "not_eligible" for a patient outside what the model was trained on (then `status_reason`
    # says why, the support decision does not trigger, and the risk is not a prediction to act on).
    status: str = "scored"
    status_reason: StatusReason | None = None


@dataclass(slots=True)
class LevelTotal:
    """Contributions summed over the features of one engagement level."""

    level: str
    contribution: float


@dataclass(slots=True)
class RiskExplanation:
    """Every feature's contribution to one patient's score (largest first), also summed by level."""

    patient_id: str
    as_of: datetime
    risk: float
    tier: str
    # Log-odds of the model before any feature is known.
    base_value: float
    # Base value plus all contributions (calibrated log-odds).
    margin: float
    contributions: list[Reason]
    levels: list[LevelTotal]
    support: SupportDecision
    model: ModelRef
    status: str = "scored"
    status_reason: StatusReason | None = None
