"""What the clinician page shows, as plain data: the patient list, one patient, the model card in words.

The list and the risk history come from the decision log. A patient's reasons are the ones
the API gives for the latest logged score: recomputed with the same scoring code from the
data folder when that reproduces the logged risk, otherwise the logged reasons (labels and
directions, since the log keeps no patient values).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.catalog import FEATURES

from .decision_log import DECISIONS
from .model_store import ServedModel
from .timeline import CohortSource, engagement_timeline

_LABELS = {spec.name: spec.label for spec in FEATURES}
_LEVEL_WORDS = {
    "usage": "How the patient uses the program",
    "patient": "The patient (baseline and clinical)",
    "intervention": "The support they get",
    "system": "How they came to the program",
}
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


def patient_list(rows: list[dict[str, Any]], limit: int,
                 explain: Callable[[list[dict[str, Any]]], dict[str, dict[str, Any]]] | None = None) -> dict[str, Any]:
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
        r["left_at"] = answer["left_at"] if answer else None
        if answer and answer["reasons"]:
            top = answer["reasons"][0]
            r["top_reason"] = {"label": top["label"], "sentence": top["sentence"],
                               "direction": _direction(top["contribution"])}
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


def _as_dict(answer: Any) -> dict[str, Any]:
    return answer.model_dump() if hasattr(answer, "model_dump") else dict(answer)


def recompute(model: ServedModel, cohort: CohortSource, latest: list[dict[str, Any]],
              top_reasons: int) -> dict[str, dict[str, Any]]:
    """The /score answers of logged decisions recomputed from the data folder by the service's scoring code.

    Only decisions of the served model version whose risk comes out the same are returned (by patient id):
    those are exactly what the API answered. Each answer also says when the patient left the program, if
    a discontinuation was recorded before the score.
    """
    from features.point_in_time import compute_features

    from . import scoring
    from .schemas import PatientIn

    wanted = [d for d in latest if d["model_version"] == model.version]
    record = cohort.records([d["patient_id"] for d in wanted]) if wanted and cohort.configured else None
    if record is None or record.patients.empty:
        return {}
    known = set(record.patients["patient_id"])
    wanted = [d for d in wanted if d["patient_id"] in known]
    times = pd.to_datetime([d["as_of"] for d in wanted], utc=True).astype("datetime64[us, UTC]")
    as_of = pd.DataFrame({"patient_id": [d["patient_id"] for d in wanted], "as_of": times})
    features = compute_features(record.patients, record.events, as_of, config=model.feature_config)
    X = features.loc[:, list(model.feature_names)].to_numpy(dtype=np.float64)
    names = model.feature_names
    items = [PatientIn(patient_id=d["patient_id"], as_of=t.to_pydatetime(),
                       features={n: (None if math.isnan(v) else float(v)) for n, v in zip(names, row)})
             for d, t, row in zip(wanted, as_of["as_of"], X)]
    answers = scoring.score_patients(items, model, datetime.now(timezone.utc), top_reasons, lambda i: f"patient {i}")
    left = _left_program(record.events, as_of)
    out = {}
    for d, answer in zip(wanted, answers):
        answer = _as_dict(answer)
        if abs(float(answer["risk"]) - float(d["risk"])) <= _SAME_RISK:
            out[d["patient_id"]] = {**answer, "left_at": left.get(d["patient_id"])}
    return out


def _left_program(events: pd.DataFrame, as_of: pd.DataFrame) -> dict[str, str]:
    """When each patient's program recorded a discontinuation before their as-of time (first one)."""
    stopped = events[events["event_type"] == "discontinued"]
    if stopped.empty:
        return {}
    joined = stopped.merge(as_of, on="patient_id")
    joined = joined[joined["timestamp"] < joined["as_of"]]
    first = joined.groupby("patient_id")["timestamp"].min()
    return {pid: t.isoformat() for pid, t in first.items()}


def _plain_reasons(reasons: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"label": r["label"], "sentence": r["sentence"], "direction": _direction(r["contribution"]),
             "contribution": float(r["contribution"])} for r in reasons]


def _logged_reasons(text: str) -> list[dict[str, Any]]:
    return [{"label": feature_label(f), "sentence": f"{feature_label(f)}: {_direction(c)} risk",
             "direction": _direction(c), "contribution": c} for f, c in parse_reasons(text)]


def patient_view(engine: sa.Engine, patient_id: str, model: ServedModel | None, cohort: CohortSource,
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
        reasons = {"source": "recomputed", "items": _plain_reasons(answer["reasons"]), "note": None}
        support["why"] = answer["support"]["why"]
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


# --- the model card in words --------------------------------------------------------------------

CANNOT_SEE = (
    "Anything outside the program: life events, other treatment, or contact with the care team that is not "
    "recorded in the program (only coach messages inside it are).",
    "Why someone stops. A patient who stops because they feel better looks the same as one who gives up.",
    "Personality, motivation and social barriers such as time, money or stigma. The only system-level "
    "information it has is how the patient was referred.",
    "Much about new patients: in the first days it has little use of the program to go on, and baseline "
    "characteristics alone predict dropout poorly.",
    "Patients unlike those it learned from: other programs, other populations, or a changed program may be "
    "scored less accurately.",
)


def _pct(x: float) -> str:
    return f"{x:.0%}"


def _slice_words(name: str | None) -> str:
    if not name:
        return "on held-out patients"
    if name.startswith("day") and name[3:].isdigit():
        return f"{name[3:]} days after enrolment"
    return "over all scoring days" if name == "pooled" else name


def _metric_words(metrics: dict[str, Any]) -> list[dict[str, str]]:
    """The headline metrics as sentences a clinician can read (only the ones the model records)."""
    m = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
         and math.isfinite(v)}
    out = []
    if "auc" in m:
        out.append({"name": "Ranking", "value": _pct(m["auc"]),
                    "text": f"Given one patient who dropped out and one who did not, it gave the higher risk to "
                            f"the one who dropped out {_pct(m['auc'])} of the time (50% would be guessing; "
                            f"AUC {m['auc']:.2f})."})
    for capacity in ("10pct", "5pct"):
        p, r = m.get(f"precision_at_{capacity}"), m.get(f"recall_at_{capacity}")
        if p is not None and r is not None:
            share = capacity.removesuffix("pct")
            out.append({"name": f"Contacting the top {share}%", "value": _pct(p),
                        "text": f"Of the {share}% of patients it rated most at risk, {_pct(p)} did drop out; "
                                f"they were {_pct(r)} of everyone who dropped out."})
            break
    if "ece" in m:
        out.append({"name": "Calibration", "value": f"{m['ece'] * 100:.1f} points",
                    "text": f"Its risks were off by {m['ece'] * 100:.1f} percentage points on average: a risk "
                            "of 30% means roughly 30 in 100 such patients dropped out."})
    if "dropout_rate" in m:
        out.append({"name": "Dropout in the test group", "value": _pct(m["dropout_rate"]),
                    "text": f"{_pct(m['dropout_rate'])} of the test patients dropped out."})
    if "largest_tpr_gap" in m:
        gap = m["largest_tpr_gap"] * 100
        text = ("Among patients who dropped out, the share it flagged for support differed between patient groups "
                f"(such as sex or age) by at most {gap:.0f} percentage points." if gap >= 0.5 else
                "No difference was measured between patient groups (such as sex or age) in the share of dropouts "
                "it flagged; groups too small to compare are left out.")
        out.append({"name": "Fairness", "value": f"{gap:.0f} points", "text": text})
    if "ceiling_auc" in m:
        out.append({"name": "Best possible on this data", "value": _pct(m["ceiling_auc"]),
                    "text": f"On simulated data the true risks would rank {_pct(m['ceiling_auc'])} correctly; "
                            "no model can do better."})
    return out


def _date(text: Any) -> str | None:
    try:
        return pd.Timestamp(text).tz_convert("UTC").date().isoformat()
    except (ValueError, TypeError):
        return None


def _count(value: Any) -> int | None:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def _windows(window: dict[str, Any]) -> list[dict[str, Any]]:
    words = {"train": "Learned from", "validation": "Tuned and calibrated on", "test": "Tested on"}
    out = []
    for part, title in words.items():
        w = window.get(part)
        if isinstance(w, dict):
            out.append({"part": title, "from": _date(w.get("enrolled_from")), "to": _date(w.get("enrolled_to")),
                        "patients": _count(w.get("patients")), "snapshots": _count(w.get("rows"))})
    return out


def _label_words(meta: dict[str, Any], horizon: int | None) -> str:
    label = meta.get("label") if isinstance(meta.get("label"), dict) else {}
    days = horizon or label.get("horizon_days")
    within = f"within the next {days} days" if days else "soon"
    definition = label.get("definition", "either")
    if definition == "inactivity":
        how = f"no use of the program for {days} days" if days else "no use of the program"
    elif definition == "discontinuation":
        how = "leaving the program (recorded as discontinued)"
    else:
        how = (f"no use of the program for {days} days, or leaving the program" if days
               else "no use of the program, or leaving it")
    return f"The chance that the patient drops out {within}: {how}."


def model_card_view(model: ServedModel) -> dict[str, Any]:
    """The served model's card in clinician words: version, training data, accuracy, limits."""
    from . import scoring

    card = _as_dict(scoring.model_card(model))
    meta = model.meta
    metrics = dict(card.get("metrics") or {})
    window = card.get("training_window") or {}
    levels: dict[str, list[str]] = {}
    for spec in model.specs:
        levels.setdefault(spec.level, []).append(spec.label)
    tiers = [{"tier": t["tier"] if isinstance(t, dict) else t.tier,
              "min_risk": t["min_risk"] if isinstance(t, dict) else t.min_risk} for t in card["thresholds"]]
    return {
        "name": card["name"],
        "version": card["version"],
        "alias": card["alias"],
        "loaded_at": str(card["loaded_at"]),
        "predicts": _label_words(meta, card.get("horizon_days")),
        "horizon_days": card.get("horizon_days"),
        "data_end": _date(window.get("data_end")),
        "windows": _windows(window),
        "evaluated": f"Measured on the test patients {_slice_words(metrics.get('slice'))}.",
        "metrics": _metric_words(metrics),
        "tiers": tiers,
        "trigger_risk": card["trigger_risk"],
        "cannot_see": list(CANNOT_SEE),
        "looks_at": [{"level": _LEVEL_WORDS.get(level, level), "labels": labels} for level, labels in
                     sorted(levels.items(), key=lambda kv: list(_LEVEL_WORDS).index(kv[0])
                            if kv[0] in _LEVEL_WORDS else 99)],
    }
