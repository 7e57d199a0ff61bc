"""What the clinician page shows, as plain data: the patient list and one patient (the model card: card_view.py).

The list and the risk history come from the decision log. A patient's reasons are the ones
the API gives for the latest logged score: recomputed with the same scoring code from the
data folder when that reproduces the logged risk, otherwise the logged reasons (labels and
directions, since the log keeps no patient values).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from features.catalog import FEATURES
from features.point_in_time import compute_features
from models.loaded import LoadedModel
from models.results import PatientRisk, Reason
from models.scoring import score_frame

from .decision_log import DECISIONS
from .timeline import CohortSource, engagement_timeline

_LABELS = {spec.name: spec.label for spec in FEATURES}
# A recomputed risk this close to the logged one is the same score.
_SAME_RISK = 1e-9
# Scores shown in one patient's history at most (the latest ones).
_HISTORY_LIMIT = 500


def parse_reasons(text: str) -> list[tuple[str, float]]:
    """Logged reasons as (feature, contribution) pairs, from either stored layout."""
    out = []
    for item in json.loads(text or "[]"):
        if isinstance(item, dict):
            out.append((str(item["feature"]), float(item["contribution"])))
        else:
            out.append((str(item[0]), float(item[1])))
    return out


def feature_label(name: str) -> str:
    """The clinician label of a feature (the name itself only for a feature unknown to the catalog)."""
    return _LABELS.get(name, name.replace("_", " ").capitalize())


def _direction(contribution: float) -> str:
    return "raises" if contribution > 0 else "lowers"


def _program_of(row: Any) -> str | None:
    value = row.get("program") if hasattr(row, "get") else None
    return str(value) if value else None


# --- the list ---------------------------------------------------------------------------------


def latest_two(engine: sa.Engine) -> list[dict[str, Any]]:
    """Per patient, the latest decision at each of its two most recent as-of times (newest first)."""
    d = DECISIONS
    at = sa.func.dense_rank().over(partition_by=d.c.patient_id, order_by=d.c.as_of.desc()).label("at_rank")
    last = sa.func.row_number().over(partition_by=(d.c.patient_id, d.c.as_of), order_by=d.c.id.desc()).label("last")
    inner = sa.select(d, at, last).subquery()
    query = sa.select(inner).where(inner.c.at_rank <= 2, inner.c.last == 1).order_by(inner.c.patient_id,
                                                                                      inner.c.at_rank)
    with engine.connect() as connection:
        return [dict(row) for row in connection.execute(query).mappings()]


@dataclass(frozen=True)
class Recomputed:
    """The API's answer for a logged decision, recomputed from the data folder, and when the patient left."""

    score: PatientRisk
    # When the program recorded a discontinuation before the score (ISO time), if it did.
    left_at: str | None


def patient_list(rows: list[dict[str, Any]], limit: int,
                 explain: Callable[[list[dict[str, Any]]], dict[str, Recomputed]] | None = None) -> dict[str, Any]:
    """The list rows: latest risk, change since the previous score, tier, top reason, support, program.

    `explain` recomputes the API's answers for the latest decisions of the rows shown (see `recompute`);
    where it gives one, the top reason is the API's sentence, else the logged factor's label.
    """
    latest: dict[str, dict[str, Any]] = {}
    previous: dict[str, dict[str, Any]] = {}
    for row in rows:
        (latest if row["at_rank"] == 1 else previous)[row["patient_id"]] = row
    out = []
    for pid, row in latest.items():
        before = previous.get(pid)
        reasons = parse_reasons(row["reasons"])
        top = reasons[0] if reasons else None
        out.append({
            "patient_id": pid,
            "risk": float(row["risk"]),
            "previous_risk": None if before is None else float(before["risk"]),
            "change": None if before is None else float(row["risk"]) - float(before["risk"]),
            "previous_as_of": None if before is None else before["as_of"],
            "tier": row["tier"],
            "top_reason": None if top is None else {"label": feature_label(top[0]), "direction": _direction(top[1])},
            "trigger": bool(row["trigger"]),
            "priority": row["priority"],
            "program": _program_of(row),
            "as_of": row["as_of"],
            "model_version": row["model_version"],
        })
    out.sort(key=lambda r: (-r["risk"], r["patient_id"]))
    shown = out[:limit]
    answers = explain([latest[r["patient_id"]] for r in shown]) if explain and shown else {}
    for r in shown:
        answer = answers.get(r["patient_id"])
        r["left_at"] = answer.left_at if answer else None
        if answer and answer.score.reasons:
            top = answer.score.reasons[0]
            r["top_reason"] = {"label": top.label, "sentence": top.sentence, "direction": _direction(top.contribution)}
    return {"patients": shown, "total": len(out), "truncated": len(out) > limit,
            "programs": sorted({r["program"] for r in out if r["program"]})}


# --- one patient ------------------------------------------------------------------------------


def patient_history(engine: sa.Engine, patient_id: str) -> list[dict[str, Any]]:
    """The patient's logged decisions, one per as-of time (the latest made), oldest first."""
    d = DECISIONS
    query = (sa.select(d).where(d.c.patient_id == patient_id).order_by(d.c.as_of.desc(), d.c.id.desc())
             .limit(_HISTORY_LIMIT * 4))
    with engine.connect() as connection:
        rows = [dict(row) for row in connection.execute(query).mappings()]
    seen: set[str] = set()
    kept = []
    for row in rows:
        if row["as_of"] not in seen:
            seen.add(row["as_of"])
            kept.append(row)
    return kept[:_HISTORY_LIMIT][::-1]


def recompute(model: LoadedModel, cohort: CohortSource, latest: list[dict[str, Any]],
              top_reasons: int) -> dict[str, Recomputed]:
    """The /score answers of logged decisions recomputed from the data folder by the scoring core.

    Only decisions of the served model version whose risk comes out the same are returned (by patient id):
    those are exactly what the API answered. Each answer also says when the patient left the program, if
    a discontinuation was recorded before the score.
    """
    wanted = [d for d in latest if d["model_version"] == model.version]
    record = cohort.records([d["patient_id"] for d in wanted]) if wanted and cohort.configured else None
    if record is None or record.patients.empty:
        return {}
    known = set(record.patients["patient_id"])
    wanted = [d for d in wanted if d["patient_id"] in known]
    times = pd.to_datetime([d["as_of"] for d in wanted], utc=True).astype("datetime64[us, UTC]")
    as_of = pd.DataFrame({"patient_id": [d["patient_id"] for d in wanted], "as_of": times})
    features = compute_features(record.patients, record.events, as_of, config=model.feature_config)
    answers = score_frame(features, model, top_reasons)
    left = _left_program(record.events, as_of)
    return {d["patient_id"]: Recomputed(answer, left.get(d["patient_id"])) for d, answer in zip(wanted, answers)
            if abs(answer.risk - float(d["risk"])) <= _SAME_RISK}


def _left_program(events: pd.DataFrame, as_of: pd.DataFrame) -> dict[str, str]:
    """When each patient's program recorded a discontinuation before their as-of time (first one)."""
    stopped = events[events["event_type"] == "discontinued"]
    if stopped.empty:
        return {}
    joined = stopped.merge(as_of, on="patient_id")
    joined = joined[joined["timestamp"] < joined["as_of"]]
    first = joined.groupby("patient_id")["timestamp"].min()
    return {pid: t.isoformat() for pid, t in first.items()}


def _plain_reasons(reasons: list[Reason]) -> list[dict[str, Any]]:
    return [{"label": r.label, "sentence": r.sentence, "direction": _direction(r.contribution),
             "contribution": r.contribution} for r in reasons]


def _logged_reasons(text: str) -> list[dict[str, Any]]:
    return [{"label": feature_label(f), "sentence": f"{feature_label(f)}: {_direction(c)} risk",
             "direction": _direction(c), "contribution": c} for f, c in parse_reasons(text)]


def patient_view(engine: sa.Engine, patient_id: str, model: LoadedModel | None, cohort: CohortSource,
                 top_reasons: int, timeline_days: int) -> dict[str, Any] | None:
    """Everything the patient page shows, or None if the decision log has no score for the patient."""
    history = patient_history(engine, patient_id)
    if not history:
        return None
    latest = history[-1]
    before = history[-2] if len(history) > 1 else None
    as_of = pd.Timestamp(latest["as_of"]).tz_convert("UTC")
    record = cohort.patient(patient_id) if cohort.configured else None

    reasons = {"source": "logged", "items": _logged_reasons(latest["reasons"]),
               "note": "Recorded reasons: the decision log keeps which factors moved the risk, not the "
                       "patient's values."}
    support = {"trigger": bool(latest["trigger"]), "priority": latest["priority"], "why": None}
    answer = recompute(model, cohort, [latest], top_reasons).get(patient_id) if model is not None else None
    if answer is not None:
        reasons = {"source": "recomputed", "items": _plain_reasons(answer.score.reasons), "note": None}
        support["why"] = answer.score.support.why
    elif record is not None and model is not None and model.version == latest["model_version"]:
        reasons["note"] = ("The program's data for this patient has changed since this score, so the reasons "
                           "are shown as recorded: which factors moved the risk, without the patient's values.")

    program = _program_of(latest)
    if program is None and record is not None and "program" in record.profile.index:
        value = record.profile["program"]
        program = None if pd.isna(value) else str(value)
    if record is not None:
        timeline = {"available": True, **engagement_timeline(record.events, record.profile["enrolled_at"], as_of,
                                                             timeline_days)}
    else:
        why = cohort.problem if cohort.problem else "the data folder has no record of this patient"
        timeline = {"available": False, "note": f"The engagement timeline is not available: {why}."}
    return {
        "patient_id": patient_id,
        "program": program,
        "risk": float(latest["risk"]),
        "tier": latest["tier"],
        "as_of": latest["as_of"],
        "model_version": latest["model_version"],
        "previous_risk": None if before is None else float(before["risk"]),
        "previous_as_of": None if before is None else before["as_of"],
        "change": None if before is None else float(latest["risk"]) - float(before["risk"]),
        "history": [{"as_of": h["as_of"], "risk": float(h["risk"]), "tier": h["tier"], "trigger": bool(h["trigger"]),
                     "priority": h["priority"], "model_version": h["model_version"]} for h in history],
        "reasons": reasons,
        "support": support,
        "timeline": timeline,
    }
