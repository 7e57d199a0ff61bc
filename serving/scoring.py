"""What the endpoints compute, as plain functions: request items -> features -> risk, reasons, decisions.

Items that bring raw `profile` + `events` go through the data contract's validation and the
same `compute_features` as training; items that bring `features` are checked against the
served model's feature list. Problems are reported by field path and rule, never by value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd

from features.catalog import FeatureSpec
from features.catalog import spec as catalog_spec
from features.point_in_time import compute_features
from features.validate import ContractError, errors_in, validate_tables

from .decision_log import Decision
from .model_store import ServedModel
from .schemas import LEVELS, ModelCard, PatientIn, Profile, Threshold

# An as-of time this far past the server's clock is refused (clock skew allowance).
_FUTURE_SKEW = timedelta(minutes=5)
_PROFILE_FIELDS = tuple(Profile.model_fields)

Locate = Callable[[int], str]
_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
# From this many feature rows on, the matrix is built through pandas (faster in bulk, slower for a few).
_FRAME_ROWS = 64


class InputProblems(Exception):
    """The request is well-formed JSON but its contents cannot be scored; `.problems` says where."""

    def __init__(self, problems: list[dict[str, str]]):
        super().__init__(f"{len(problems)} input problem(s)")
        self.problems = problems


def _problem(field: str, rule: str, kind: str) -> dict[str, str]:
    return {"field": field, "rule": rule, "type": kind}


@dataclass(frozen=True)
class Scored:
    """Model outputs for a batch of request items, row-aligned with the items."""

    X: np.ndarray
    as_of: list[datetime]
    risk: np.ndarray
    tier: np.ndarray
    contributions: np.ndarray
    base: np.ndarray


# --- features ------------------------------------------------------------------------


def _as_of(items: Sequence[PatientIn], now: datetime, locate: Locate) -> list[datetime]:
    times = [item.as_of.astimezone(timezone.utc) if item.as_of else now for item in items]
    late = [i for i, t in enumerate(times) if t > now + _FUTURE_SKEW]
    if late:
        raise InputProblems([_problem(f"{locate(i)}.as_of", "must not be in the future", "in_future") for i in late])
    return times


def _given_features(items: Sequence[PatientIn], rows: list[int], model: ServedModel, X: np.ndarray,
                    locate: Locate) -> list[dict[str, str]]:
    """Fill X's rows from items that send feature values; problems for unknown or absent names."""
    names = model.feature_names
    wanted = set(names)
    problems: list[dict[str, str]] = []
    values: list[tuple] = []
    pick = itemgetter(*names) if len(names) > 1 else (lambda d: (d[names[0]],))
    for i in rows:
        given = items[i].features
        keys = given.keys()
        if keys != wanted:
            for name in sorted(keys - wanted):
                # A name that cannot be a feature name is not repeated back: it may be data in the wrong place.
                where = f"{locate(i)}.features.{name}" if _NAME.fullmatch(name) else f"{locate(i)}.features"
                problems.append(_problem(where, f"names a feature that model {model.name} version {model.version} "
                                         "does not have", "unknown_feature"))
            absent = wanted - keys
            if absent:
                shown = ", ".join(n for n in names if n in absent)
                problems.append(_problem(f"{locate(i)}.features",
                                         f"lacks feature(s) {shown} (send null for a value that is not known)",
                                         "missing_feature"))
        values.append(pick(given) if keys == wanted else tuple(given.get(n) for n in names))
    if not problems:
        if len(rows) >= _FRAME_ROWS:  # pandas turns many rows of floats and None into a matrix fastest
            X[rows] = pd.DataFrame.from_records(values, columns=list(names)).to_numpy(dtype=np.float64,
                                                                                    na_value=np.nan)
        else:
            X[rows] = [[math.nan if v is None else v for v in row] for row in values]
    return problems


def _contract_problems(problems, raw_items: list[int], event_owner: np.ndarray, event_pos: np.ndarray,
                       locate: Locate) -> list[dict[str, str]]:
    """Contract problems (by table row) as request field paths."""
    out = []
    for p in errors_in(problems):
        rows = p.rows or ()
        if not rows:
            out.append(_problem(locate(raw_items[0]) if p.source == "patients" else "events", p.message, p.rule))
            continue
        for r in rows:
            if p.source == "patients":
                where = f"{locate(raw_items[r - 1])}.profile" + (f".{p.column}" if p.column else "")
            else:
                where = f"{locate(raw_items[event_owner[r - 1]])}.events[{event_pos[r - 1]}]" + (
                    f".{p.column}" if p.column else "")
            out.append(_problem(where, p.message, p.rule))
    return out


def _raw_features(items: Sequence[PatientIn], rows: list[int], as_of: list[datetime], model: ServedModel,
                  X: np.ndarray, now: datetime, locate: Locate) -> list[dict[str, str]]:
    """Fill X's rows from items that send profile + events, with the contract checks and training's features."""
    keys = [f"r{k}" for k in range(len(rows))]
    profiles = [items[i].profile for i in rows]
    columns = {name: [getattr(p, name) for p in profiles] for name in _PROFILE_FIELDS}
    # Optional columns nobody sent are left out, as a table without them would be.
    patients = pd.DataFrame({"patient_id": keys, **{n: v for n, v in columns.items() if any(x is not None for x in v)}})
    counts = np.array([len(items[i].events) for i in rows], dtype=np.int64)
    owner = np.repeat(np.arange(len(rows)), counts)
    position = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    all_events = [e for i in rows for e in items[i].events]
    events = pd.DataFrame({
        "patient_id": np.asarray(keys, dtype=object)[owner] if len(owner) else np.array([], dtype=object),
        "timestamp": pd.to_datetime([e.timestamp for e in all_events], utc=True),
        "event_type": [e.event_type.value for e in all_events],
        "value": np.array([np.nan if e.value is None else e.value for e in all_events], dtype=np.float64),
    })
    problems = [_problem(f"{locate(i)}.as_of", "must not be before profile.enrolled_at", "before_enrolment")
                for i, p in zip(rows, profiles) if as_of[i] < p.enrolled_at]
    try:
        cohort = validate_tables(patients, events, now=now + _FUTURE_SKEW)
    except ContractError as error:
        problems += _contract_problems(error.problems, rows, owner, position, locate)
    if problems:
        return problems
    times = pd.to_datetime(pd.Series([as_of[i] for i in rows]), utc=True).astype("datetime64[us, UTC]")
    as_of_frame = pd.DataFrame({"patient_id": keys, "as_of": times})
    features = compute_features(cohort.patients, cohort.events, as_of_frame, config=model.feature_config)
    X[rows] = features.loc[:, list(model.feature_names)].to_numpy(dtype=np.float64)
    return []


def feature_matrix(items: Sequence[PatientIn], model: ServedModel, now: datetime,
                   locate: Locate) -> tuple[np.ndarray, list[datetime]]:
    """The model's feature matrix for request items (row per item) and their as-of times."""
    as_of = _as_of(items, now, locate)
    X = np.full((len(items), len(model.feature_names)), np.nan)
    given = [i for i, item in enumerate(items) if item.features is not None]
    raw = [i for i, item in enumerate(items) if item.features is None]
    problems = _given_features(items, given, model, X, locate) if given else []
    if raw:
        problems += _raw_features(items, raw, as_of, model, X, now, locate)
    if problems:
        raise InputProblems(problems)
    return X, as_of


def score_matrix(X: np.ndarray, as_of: list[datetime], model: ServedModel) -> Scored:
    """Risk, tier and contributions for a feature matrix."""
    contributions, base = model.contributions(X)
    log_odds = contributions.sum(axis=1) + base
    risk = 1.0 / (1.0 + np.exp(-log_odds))
    return Scored(X, as_of, risk, model.tier_of(risk), contributions, base)


# --- words ---------------------------------------------------------------------------
# Answers are built as plain dicts in the shape of the response models in schemas.py and
# serialised once (pydantic_core.to_json): constructing thousands of model objects per batch
# would cost more than scoring it.


@lru_cache(maxsize=1 << 16)
def _sentence(name: str, value: float | None, raises: bool) -> str:
    spec = catalog_spec(name)
    words = spec.describe(math.nan if value is None else value)
    if value is None and words.lower() == "not recorded":
        words = f"{spec.label}: not recorded"
    return f"{words} {'raises' if raises else 'lowers'} risk"


def sentence(spec: FeatureSpec, value: float | None, raises: bool) -> str:
    """A clinician's sentence for one feature value (None: not known) and the direction it moves risk."""
    return _sentence(spec.name, value, raises)


def _reason(spec: FeatureSpec, value: float, contribution: float) -> dict[str, Any]:
    known = None if value != value else value
    return {"feature": spec.name, "label": spec.label, "value": known, "contribution": contribution,
            "sentence": _sentence(spec.name, known, contribution > 0)}


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


def horizon_days(model: ServedModel) -> int | None:
    """The prediction horizon the model was trained for, if its metadata says."""
    return model.horizon_days


def support_decision(model: ServedModel, risk: float, tier: str, reasons: list[dict[str, Any]],
                     has_coach: float) -> dict[str, Any]:
    """Whether to bring in human support now, how soon, and why (a SupportDecision)."""
    horizon = model.horizon_days
    within = f" within {horizon} days" if horizon else ""
    threshold = f"{model.trigger_risk:.0%}"
    if risk < model.trigger_risk:
        return {"trigger": False, "priority": "routine",
                "why": f"{risk:.0%} risk of dropping out{within}, below the {threshold} support threshold: "
                       "no outreach now"}
    who = "Alert the patient's coach" if has_coach == 1.0 else "Offer the patient human support"
    raising = next((r for r in reasons if r["contribution"] > 0), None)
    because = f"; main reason: {raising['sentence']}" if raising else ""
    return {"trigger": True, "priority": "urgent" if tier == model.tiers[0][0] else "soon",
            "why": f"{who}: {risk:.0%} risk of dropping out{within}, at or above the {threshold} threshold{because}"}


def _coach_flags(model: ServedModel, X: np.ndarray) -> np.ndarray:
    names = model.feature_names
    return X[:, names.index("human_support")] if "human_support" in names else np.full(len(X), np.nan)


def _model_ref(model: ServedModel) -> dict[str, str]:
    return {"name": model.name, "version": model.version}


def patient_scores(items: Sequence[PatientIn], scored: Scored, model: ServedModel, k: int) -> list[dict[str, Any]]:
    """The per-patient answers of /score and /triage (PatientScore dicts)."""
    ref = _model_ref(model)
    specs = model.specs
    top = top_indices(scored.contributions, k)
    values = np.take_along_axis(scored.X, top, axis=1).tolist()
    contributions = np.take_along_axis(scored.contributions, top, axis=1).tolist()
    coach = _coach_flags(model, scored.X).tolist()
    risks, tiers, top = scored.risk.tolist(), scored.tier.tolist(), top.tolist()
    out = []
    for i, item in enumerate(items):
        reasons = [_reason(specs[j], v, c) for j, v, c in zip(top[i], values[i], contributions[i]) if c != 0.0]
        out.append({"patient_id": item.patient_id, "as_of": scored.as_of[i], "risk": risks[i], "tier": tiers[i],
                    "reasons": reasons, "support": support_decision(model, risks[i], tiers[i], reasons, coach[i]),
                    "model": ref})
    return out


def explanation(item: PatientIn, scored: Scored, model: ServedModel) -> dict[str, Any]:
    """Every feature's contribution for one patient, and their sums by engagement level (an Explanation)."""
    x, c = scored.X[0], scored.contributions[0]
    order = top_indices(scored.contributions[:1], len(c))[0].tolist()
    contributions = [_reason(model.specs[j], float(x[j]), float(c[j])) for j in order]
    levels = np.array([spec.level for spec in model.specs])
    totals = [{"level": level, "contribution": float(c[levels == level].sum())} for level in LEVELS]
    risk, tier = float(scored.risk[0]), str(scored.tier[0])
    return {"patient_id": item.patient_id, "as_of": scored.as_of[0], "risk": risk, "tier": tier,
            "base_value": float(scored.base[0]), "margin": float(scored.base[0] + c.sum()),
            "contributions": contributions, "levels": totals,
            "support": support_decision(model, risk, tier, contributions, float(_coach_flags(model, scored.X)[0])),
            "model": _model_ref(model)}


def triage(scores: list[dict[str, Any]], capacity: int) -> tuple[dict[str, Any], set[int]]:
    """The `capacity` patients to contact first, highest risk first, ties in request order (a TriageResponse),
    and their positions in `scores`."""
    chosen = sorted(range(len(scores)), key=lambda i: -scores[i]["risk"])[:capacity]
    return {"contact": [scores[i] for i in chosen], "considered": len(scores), "capacity": capacity}, set(chosen)


# --- decision log records --------------------------------------------------------------


def decisions(request_id: str, endpoint: str, answers: Sequence[dict[str, Any]],
              contacted: set[int] | None = None, reasons_kept: int = 5,
              programs: Sequence[str | None] | None = None) -> list[Decision]:
    """Decision-log records for answered patients (reason features and contributions, never values).

    For triage, `contacted` holds the positions (in `answers`) of the patients selected for contact:
    that selection is what is logged as the trigger. `programs` (aligned with `answers`) are the
    patients' programs from their profiles, logged for the clinician page's filter.
    """
    out = []
    for position, a in enumerate(answers):
        reasons = a["reasons"] if "reasons" in a else a["contributions"]
        trigger = a["support"]["trigger"] if contacted is None else position in contacted
        out.append(Decision(
            request_id=request_id, endpoint=endpoint, patient_id=a["patient_id"], as_of=a["as_of"],
            model_name=a["model"]["name"], model_version=a["model"]["version"], risk=a["risk"], tier=a["tier"],
            reasons=tuple((r["feature"], r["contribution"]) for r in reasons[:reasons_kept]),
            trigger=trigger, priority=a["support"]["priority"],
            program=programs[position] if programs is not None else None))
    return out


# --- endpoint bodies ---------------------------------------------------------------------


def score_patients(items: Sequence[PatientIn], model: ServedModel, now: datetime, k: int,
                   locate: Locate) -> list[dict[str, Any]]:
    """Scores for request items: features, model, reasons and support decisions."""
    X, as_of = feature_matrix(items, model, now, locate)
    return patient_scores(items, score_matrix(X, as_of, model), model, k)


def explain_patient(item: PatientIn, model: ServedModel, now: datetime, locate: Locate) -> dict[str, Any]:
    """The full breakdown of one request item."""
    X, as_of = feature_matrix([item], model, now, locate)
    return explanation(item, score_matrix(X, as_of, model), model)


def model_card(model: ServedModel) -> ModelCard:
    """The model card of the served version, from its registry entry and metadata."""
    meta = model.meta
    window = meta.get("training_window") or {k: meta[k] for k in ("train_start", "train_end", "data_end")
                                             if k in meta}
    return ModelCard(
        name=model.name, version=model.version, alias=model.alias, loaded_at=model.loaded_at,
        training_window=window,
        metrics={"slice": meta.get("headline_slice"), **(meta.get("headline_metrics") or meta.get("metrics") or {})},
        thresholds=[Threshold(tier=name, min_risk=cut) for name, cut in model.tiers],
        trigger_risk=model.trigger_risk, horizon_days=model.horizon_days,
        features=[{"name": s.name, "label": s.label, "unit": s.unit, "level": s.level} for s in model.specs],
    )


def warm_up(model: ServedModel, k: int, rounds: int) -> None:
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
            decisions("warm-up", "score", score_patients([item], model, now, k, lambda i: "warm-up"))
            explain_patient(item, model, now, lambda i: "warm-up")
