"""What the endpoints do, as plain functions: request items -> the scoring core -> answers and decision rows.

The numbers and words come from the scoring core (`models.scoring`); this module only turns
request items into the model's matrix (`inputs.py`), the core's typed results into the JSON
bodies of the response models in schemas.py, and into decision-log rows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import cache

import numpy as np
from pydantic import TypeAdapter

from models.loaded import LoadedModel
from models.results import PatientRisk, RiskExplanation
from models.scoring import explain_row, score_matrix
from outreach.policy import Decision as PolicyDecision

from .decision_log import Decision
from .inputs import Locate, feature_matrix
from .schemas import ModelCard, PatientIn, Threshold

# A decision logged without a trigger policy: no policy, version, propensity or draw.
_NO_POLICY = (None, None, None, None)


@dataclass(slots=True)
class ScoreAnswer:
    """The body of /score (a ScoreResponse): scores in the order the patients were sent."""

    results: list[PatientRisk]


@dataclass(slots=True)
class TriageAnswer:
    """The body of /triage (a TriageResponse): the patients to contact first, most at risk first."""

    contact: list[PatientRisk]
    considered: int
    capacity: int
    ranked_by: str = "risk"
    note: str = ""


Answer = ScoreAnswer | TriageAnswer | RiskExplanation


@cache
def _serializer(kind: type) -> TypeAdapter:
    # Serialising by a known schema is as fast as plain dicts (and 3x faster than inferring the types).
    return TypeAdapter(kind)


def answer_json(answer: Answer) -> bytes:
    """An endpoint's answer as the JSON body of its response model."""
    return _serializer(type(answer)).dump_json(answer)


def score_patients(items: Sequence[PatientIn], model: LoadedModel, now: datetime, k: int,
                   locate: Locate, seen: Callable[[np.ndarray], None] | None = None,
                   feature_names: Sequence[str] | None = None) -> list[PatientRisk]:
    """Scores for request items (their `values` named by the request's `feature_names`): features (shown to
    `seen` when given, e.g. for metrics), then the core's risk, reasons and support decisions."""
    X, as_of = feature_matrix(items, model, now, locate, feature_names)
    if seen is not None:
        seen(X)
    return score_matrix(X, model, [item.patient_id for item in items], as_of, k)


def explain_patient(item: PatientIn, model: LoadedModel, now: datetime, locate: Locate,
                    feature_names: Sequence[str] | None = None) -> RiskExplanation:
    """The full breakdown of one request item (its `values` named by the request's `feature_names`)."""
    X, as_of = feature_matrix([item], model, now, locate, feature_names)
    return explain_row(X[0], model, item.patient_id, as_of[0])


def triage(scores: list[PatientRisk], capacity: int) -> tuple[TriageAnswer, set[int]]:
    """The `capacity` patients to contact first, highest risk first, ties in request order, and their
    positions in `scores`."""
    chosen = sorted(range(len(scores)), key=lambda i: -scores[i].risk)[:capacity]
    return TriageAnswer([scores[i] for i in chosen], len(scores), capacity), set(chosen)


def decisions(request_id: str, endpoint: str, answers: Sequence[PatientRisk | RiskExplanation],
              contacted: set[int] | None = None, reasons_kept: int = 5,
              programs: Sequence[str | None] | None = None,
              policy: Sequence[PolicyDecision] | None = None) -> list[Decision]:
    """Decision-log records for answered patients (reason features and contributions, never values).

    For triage, `contacted` holds the positions (in `answers`) of the patients selected for contact:
    that selection is what is logged as the trigger. `programs` (aligned with `answers`) are the
    patients' programs from their profiles, logged for the clinician page's filter. `policy` (aligned
    with `answers`) are the trigger policy's decisions: their action is the trigger, and the policy,
    version, propensity and draw are logged with it.
    """
    out = []
    append = out.append
    if programs is None:
        programs = [None] * len(answers)
    # Positional arguments, in Decision's field order: a batch makes a thousand of these.
    for position, a in enumerate(answers):
        reasons = a.reasons if isinstance(a, PatientRisk) else a.contributions
        support, model = a.support, a.model
        chosen = policy[position] if policy is not None else None
        append(Decision(request_id, endpoint, a.patient_id, a.as_of, model.name, model.version, a.risk, a.tier,
                        tuple([(r.feature, r.contribution) for r in reasons[:reasons_kept]]),
                        support.trigger if contacted is None else position in contacted, support.priority,
                        programs[position],
                        *((chosen.policy, chosen.policy_version, chosen.propensity, chosen.draw) if chosen is not None
                          else _NO_POLICY),
                        a.status))
    return out


def model_card(model: LoadedModel) -> ModelCard:
    """The model card of the served version, from its registry entry and metadata."""
    meta = model.metadata
    return ModelCard(
        name=model.name, version=model.version, alias=model.alias, loaded_at=model.loaded_at,
        training_window=meta.training_window.model_dump(mode="json"),
        metrics={"slice": meta.headline_slice, **meta.headline_metrics},
        thresholds=[Threshold(tier=name, min_risk=cut) for name, cut in model.tiers],
        trigger_risk=model.trigger_risk, horizon_days=model.horizon_days,
        features=[{"name": s.name, "label": s.label, "unit": s.unit, "level": s.level} for s in model.specs],
    )


def warm_up(model: LoadedModel, k: int, rounds: int) -> None:
    """Run every endpoint's code path a few times on a made-up patient, from raw events and from features."""
    now = datetime.now(timezone.utc)
    start = now - timedelta(days=30)
    raw = PatientIn(patient_id="warm-up", as_of=now, profile={"enrolled_at": start},
                    events=[{"timestamp": start + timedelta(days=d, hours=12), "event_type": "session",
                             "value": 10.0} for d in range(0, 28, 3)])
    X, _ = feature_matrix([raw], model, now, lambda i: "warm-up")
    given = PatientIn(patient_id="warm-up", as_of=now,
                      features={n: None if x != x else float(x) for n, x in zip(model.feature_names, X[0])})
    for _ in range(max(rounds, 1)):
        for item in (raw, given):
            scores = score_patients([item], model, now, k, lambda i: "warm-up")
            decisions("warm-up", "score", scores)
            answer_json(ScoreAnswer(scores))
            answer_json(triage(scores, 1)[0])
            answer_json(explain_patient(item, model, now, lambda i: "warm-up"))
