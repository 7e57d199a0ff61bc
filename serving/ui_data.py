"""What the clinician page shows, as plain data: the patient list and one patient (the model card: card_view.py).

The list and the risk history come from the decision log. A patient's reasons are the ones
the API gives for the latest logged score: recomputed with the same scoring code from the
data folder when that reproduces the logged risk, otherwise the logged reasons (labels and
directions, since the log keeps no patient values).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd
import sqlalchemy as sa

from features.catalog import FEATURES, THEME_WORDS
from features.catalog import spec as catalog_spec
from features.point_in_time import compute_features
from models.loaded import LoadedModel
from models.reasons import group_reasons
from models.results import PatientRisk
from models.scoring import score_frame

from .decision_log import DECISIONS
from .timeline import CohortSource, engagement_timeline, measures
from .work_queue import Activity, assignments, ensure_tables, marks_by_patient, state_words

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


def theme_label(name: str) -> str:
    """The theme a logged factor belongs to, in clinician words (inactivity, symptoms, ...)."""
    try:
        return THEME_WORDS[catalog_spec(name).theme]
    except KeyError:
        return feature_label(name)


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


def newest_decision(engine: sa.Engine) -> int | None:
    """The id of the newest logged decision (a cheap check whether the list must be read again)."""
    with engine.connect() as connection:
        return connection.execute(sa.select(sa.func.max(DECISIONS.c.id))).scalar()


@dataclass(frozen=True)
class Recomputed:
    """The API's answer for a logged decision, recomputed from the data folder, and when the patient left."""

    score: PatientRisk
    # When the program recorded a discontinuation before the score (ISO time), if it did.
    left_at: str | None


def patient_list(rows: list[dict[str, Any]], limit: int, states: dict[str, Activity] | None = None,
                 lapsed_after: int = 0) -> dict[str, Any]:
    """The list rows: latest risk, change since the previous score, tier, main reason, state, support, program.

    Built from the decision log alone (and the patients' activity, `states`), so it is quick for thousands
    of patients; the main reason is the theme of the top logged factor (a patient's page words it fully).
    """
    states = states or {}
    latest: dict[str, dict[str, Any]] = {}
    previous: dict[str, dict[str, Any]] = {}
    for row in rows:
        (latest if row["at_rank"] == 1 else previous)[row["patient_id"]] = row
    out = []
    for pid, row in latest.items():
        before = previous.get(pid)
        top = next(((f, c) for f, c in parse_reasons(row["reasons"]) if theme_label(f) != THEME_WORDS["background"]),
                   None)
        a = states.get(pid)
        out.append({
            "patient_id": pid,
            "decision_id": str(row["id"]),
            "risk": float(row["risk"]),
            "previous_risk": None if before is None else float(before["risk"]),
            "change": None if before is None else float(row["risk"]) - float(before["risk"]),
            "previous_as_of": None if before is None else before["as_of"],
            "tier": row["tier"],
            "top_reason": None if top is None else {"label": theme_label(top[0]), "direction": _direction(top[1])},
            "state": state_words(a, lapsed_after),
            "days_idle": None if a is None else a.days_idle,
            "left": bool(a and a.left),
            "trigger": bool(row["trigger"]),
            "priority": row["priority"],
            "program": _program_of(row),
            "as_of": row["as_of"],
            "model_version": row["model_version"],
        })
    out.sort(key=lambda r: (-r["risk"], r["patient_id"]))
    return {"patients": out[:limit], "total": len(out), "truncated": len(out) > limit,
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
    # ISO8601: the log holds times with and without fractional seconds side by side.
    times = pd.to_datetime([d["as_of"] for d in wanted], utc=True, format="ISO8601").astype("datetime64[us, UTC]")
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


def _grouped_reasons(answer: PatientRisk, limit: int) -> list[dict[str, Any]]:
    return [{"label": g.title, "sentence": g.sentence, "direction": _direction(g.contribution),
             "contribution": g.contribution, "related": list(g.related)}
            for g in group_reasons(answer.reasons, limit)]


def _logged_reasons(text: str, limit: int) -> list[dict[str, Any]]:
    themes: dict[str, float] = {}
    for f, c in parse_reasons(text):
        if theme_label(f) != THEME_WORDS["background"]:
            themes[theme_label(f)] = themes.get(theme_label(f), 0.0) + c
    ranked = sorted(themes.items(), key=lambda kv: -abs(kv[1]))[:limit]
    return [{"label": t, "sentence": f"{t}: {_direction(c)} the risk", "direction": _direction(c),
             "contribution": c, "related": []} for t, c in ranked]


def _work(engine: sa.Engine, patient_id: str) -> dict[str, Any]:
    """The coach's marks of the patient (oldest first) and the coach they are assigned to."""
    ensure_tables(engine)
    return {"marks": marks_by_patient(engine, patient_id).get(patient_id, []),
            "coach": assignments(engine).get(patient_id)}


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

    reasons = {"source": "logged", "items": _logged_reasons(latest["reasons"], top_reasons),
               "note": "Recorded reasons: the decision log keeps which factors moved the risk, not the "
                       "patient's values."}
    support = {"trigger": bool(latest["trigger"]), "priority": latest["priority"], "why": None}
    # Every feature's reason, so each theme's pull is complete; shown grouped, top `top_reasons` themes.
    every = len(model.feature_names) if model is not None else 0
    answer = recompute(model, cohort, [latest], every).get(patient_id) if model is not None else None
    if answer is not None:
        reasons = {"source": "recomputed", "items": _grouped_reasons(answer.score, top_reasons), "note": None}
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
                                                             timeline_days),
                    "measures": measures(record.events, as_of, record.profile)}
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
        "decision_id": str(latest["id"]),
        **_work(engine, patient_id),
    }
