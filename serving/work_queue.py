"""The coach's work queue on the clinician page: whom to contact today, why now, and what came of it.

Today's queue is the outreach policy's choice (outreach/policy.py) among the patients with a logged
score, sized to the team's capacity (the policy's `capacity_per_day`, else the page's `today_capacity`),
in two sections: patients still using the program but slipping, and patients who recently stopped
(re-engagement). A patient who left the program, or stopped long ago, is not in Today (they stay in
the full list). Whether a patient is active is read from the data folder's events before the score.

A coach's marks (contacted / reached / no answer / declined) are outcomes in the outcomes store
(outreach/outcomes.py) of the decision-log database, for the patient's latest logged decision (its
`id` is the outcome's `decision_id`). Assignments to a coach are in this module's own table
`coach_assignments` of the same database. Nothing here logs patient values.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa

from features.contract import OWN_ENGAGEMENT, EventType
from outreach.outcomes import METADATA as OUTCOME_METADATA
from outreach.outcomes import OUTCOMES, Outcome, OutcomeKind, create_tables, record_outcomes
from outreach.policy import Candidate, decide
from outreach.settings import PolicySettings

from .decision_log import DECISIONS
from .timeline import CohortSource, instants

ASSIGNMENT_METADATA = sa.MetaData()
ASSIGNMENTS = sa.Table(
    "coach_assignments",
    ASSIGNMENT_METADATA,
    sa.Column("patient_id", sa.String(128), primary_key=True),
    sa.Column("coach", sa.String(128), nullable=False),
    sa.Column("assigned_at", sa.String(40), nullable=False),
)
# What a coach can mark on the page, and the outcome kind it is stored as.
MARKS = {"contacted": OutcomeKind.ATTEMPTED, "reached": OutcomeKind.REACHED,
         "no_answer": OutcomeKind.NO_ANSWER, "declined": OutcomeKind.DECLINED}
MARK_WORDS = {"attempted": "Contacted", "reached": "Reached", "no_answer": "No answer", "declined": "Declined",
              "re_engaged": "Came back to the program"}
DAY = pd.Timedelta(days=1)
_OWN = [t.value for t in OWN_ENGAGEMENT]


def ensure_tables(engine: sa.Engine) -> None:
    """Create the assignment and outcome tables in the decision-log database if they are missing."""
    create_tables(engine, ASSIGNMENT_METADATA)
    create_tables(engine, OUTCOME_METADATA)


# --- assignments and marks ----------------------------------------------------------------------


def assignments(engine: sa.Engine) -> dict[str, str]:
    """Each assigned patient's coach."""
    with engine.connect() as connection:
        return {row.patient_id: row.coach for row in connection.execute(sa.select(ASSIGNMENTS))}


def assign(engine: sa.Engine, patient_id: str, coach: str) -> None:
    """Assign a patient to a coach (an empty coach removes the assignment)."""
    now = datetime.now(timezone.utc).isoformat()
    with engine.begin() as connection:
        connection.execute(ASSIGNMENTS.delete().where(ASSIGNMENTS.c.patient_id == patient_id))
        if coach:
            connection.execute(ASSIGNMENTS.insert().values(patient_id=patient_id, coach=coach, assigned_at=now))


def latest_decision_id(engine: sa.Engine, patient_id: str) -> str | None:
    """The id of the patient's latest logged decision (what a mark refers to), if any."""
    d = DECISIONS
    query = sa.select(d.c.id).where(d.c.patient_id == patient_id).order_by(d.c.as_of.desc(), d.c.id.desc()).limit(1)
    with engine.connect() as connection:
        found = connection.execute(query).scalar()
    return None if found is None else str(found)


def mark(engine: sa.Engine, patient_id: str, what: str, coach: str | None) -> Outcome | None:
    """Store a coach's mark as an outcome of the patient's latest decision (None: no decision logged)."""
    decision_id = latest_decision_id(engine, patient_id)
    if decision_id is None:
        return None
    outcome = Outcome(outcome_id=f"ui:{uuid.uuid4()}", decision_id=decision_id, kind=MARKS[what],
                      at=datetime.now(timezone.utc), coach=coach or None)
    record_outcomes([outcome], engine.url.render_as_string(hide_password=False))
    return outcome


def marks_by_patient(engine: sa.Engine, patient_id: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Every stored outcome of each patient's logged decisions, oldest first (one patient's, if given)."""
    d, o = DECISIONS, OUTCOMES
    query = (sa.select(d.c.patient_id, o.c.kind, o.c.at, o.c.coach)
             .join(d, o.c.decision_id == sa.cast(d.c.id, sa.String)).order_by(o.c.at, o.c.outcome_id))
    if patient_id is not None:
        query = query.where(d.c.patient_id == patient_id)
    out: dict[str, list[dict[str, Any]]] = {}
    with engine.connect() as connection:
        for row in connection.execute(query):
            out.setdefault(row.patient_id, []).append(
                {"kind": row.kind, "words": MARK_WORDS.get(row.kind, row.kind), "at": row.at, "coach": row.coach})
    return out


# --- who is active --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Activity:
    """A patient's use of the program up to their latest score."""

    days_idle: int  # whole days since their last own use (since enrolment if none yet)
    active_days: int  # days with any own use since enrolment
    left: bool  # the program recorded a discontinuation before the score


def activity(cohort: CohortSource, as_of: dict[str, str]) -> dict[str, Activity]:
    """Per patient (of `as_of`: patient id -> score time), their use of the program before the score."""
    record = cohort.records(list(as_of)) if cohort.configured and as_of else None
    if record is None or record.patients.empty:
        return {}
    ids = record.patients["patient_id"].astype(str)
    at = pd.Series(pd.to_datetime([as_of[p] for p in ids], utc=True, format="ISO8601"), index=ids.to_numpy())
    events = record.events
    # Plain UTC datetime64 on both sides: tz-aware to_numpy() would give slow Timestamp objects.
    when = instants(at.reset_index(drop=True))[pd.Index(ids).get_indexer(events["patient_id"].astype(str))]
    before = instants(events["timestamp"]) < when
    types = events["event_type"].astype(str).to_numpy()
    own = events.loc[before & np.isin(types, _OWN), ["patient_id", "timestamp"]]
    last = own.groupby("patient_id")["timestamp"].max()
    days = own.assign(day=own["timestamp"].dt.floor("D")).groupby("patient_id")["day"].nunique()
    left = set(events.loc[before & (types == EventType.DISCONTINUED.value), "patient_id"].astype(str))
    keys = ids.to_numpy()
    enrolled = pd.Series(record.patients["enrolled_at"].to_numpy(), index=keys)
    latest_use = last.reindex(keys)
    since = latest_use.where(latest_use.notna(), enrolled)
    # Rounded as the reason sentences round it ("No activity for 9 days").
    idle = np.rint(((at - since) / DAY).to_numpy(dtype=np.float64)).astype(np.int64)
    active = days.reindex(keys, fill_value=0).to_numpy()
    out = {pid: Activity(int(i), int(a), pid in left) for pid, i, a in zip(keys, idle, active)}
    return out


def state_words(a: Activity | None, lapsed_after: int) -> str:
    """The patient's state in a few words, for the list."""
    if a is None:
        return "Not known"
    if a.left:
        return "Left the program"
    if a.days_idle >= lapsed_after:
        return f"Stopped {a.days_idle} days ago"
    return "Active today" if a.days_idle == 0 else f"Active, last use {_days(a.days_idle)} ago"


def _days(n: int) -> str:
    return "1 day" if n == 1 else f"{n} days"


def _day_words(iso: str) -> str:
    return pd.Timestamp(iso).tz_convert("UTC").strftime("%-d %b")


# --- Today ----------------------------------------------------------------------------------------


def why_now(row: dict[str, Any], a: Activity | None, reason: str | None, lapsed: bool) -> str:
    """One line saying why this patient is on today's list (no risk figure: the row shows it)."""
    parts = []
    if lapsed and a is not None:
        parts.append(f"No use of the program for {_days(a.days_idle)}, after {_days(a.active_days)} of use"
                     if a.active_days else f"No use of the program in the {_days(a.days_idle)} since enrolment")
    if row.get("change") is not None and abs(row["change"]) >= 0.05:
        way = "up" if row["change"] > 0 else "down"
        parts.append(f"risk {way} {abs(row['change']) * 100:.0f} points since {_day_words(row['previous_as_of'])}")
    if not lapsed and a is not None:
        parts.append("used the program today" if a.days_idle == 0 else f"last used it {_days(a.days_idle)} ago")
    if reason:
        parts.append(reason if reason[1:2].isupper() else reason[0].lower() + reason[1:])
    text = "; ".join(parts) or "Highest in today's ranking"
    return text[0].upper() + text[1:]


def today(rows: list[dict[str, Any]], states: dict[str, Activity], coaches: dict[str, str], policy: PolicySettings,
          capacity: int, lapsed_after: int, recent_days: int, now: datetime) -> list[dict[str, Any]]:
    """Today's queue: the policy's choice within capacity, in its ranking order, each with its section."""
    candidates, sections = [], {}
    for row in rows:
        a = states.get(row["patient_id"])
        if a is not None and (a.left or a.days_idle > recent_days):
            continue
        sections[row["patient_id"]] = "lapsed" if a is not None and a.days_idle >= lapsed_after else "slipping"
        candidates.append(Candidate(row["patient_id"], now, float(row["risk"]), row["tier"],
                                    coaches.get(row["patient_id"])))
    if policy.capacity_per_day is None:
        policy = policy.model_copy(update={"capacity_per_day": capacity})
    chosen = sorted((d for d in decide(candidates, policy) if d.action), key=lambda d: (-d.score, d.patient_id))
    return [{"patient_id": d.patient_id, "section": sections[d.patient_id], "rank": i + 1}
            for i, d in enumerate(chosen)]
