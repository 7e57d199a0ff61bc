"""The data contract: the tables a program sends lapse, their columns and vocabularies."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import pandas as pd


class EventType(StrEnum):
    """Every event type lapse accepts in the events table."""

    SESSION = "session"
    MODULE_COMPLETED = "module_completed"
    EXERCISE_COMPLETED = "exercise_completed"
    MOOD_CHECKIN = "mood_checkin"
    PHQ9 = "phq9"
    GAD7 = "gad7"
    MESSAGE_TO_COACH = "message_to_coach"
    MESSAGE_FROM_COACH = "message_from_coach"
    REMINDER_SENT = "reminder_sent"
    REMINDER_OPENED = "reminder_opened"
    DISCONTINUED = "discontinued"


# The patient's own use of the program. Coach messages, reminders and the
# discontinuation record are things that happen *to* or *about* the patient.
OWN_ENGAGEMENT: frozenset[EventType] = frozenset(
    {
        EventType.SESSION,
        EventType.MODULE_COMPLETED,
        EventType.EXERCISE_COMPLETED,
        EventType.MOOD_CHECKIN,
        EventType.PHQ9,
        EventType.GAD7,
        EventType.MESSAGE_TO_COACH,
    }
)


@dataclass(frozen=True)
class ValueRule:
    """What the `value` column must hold for one event type."""

    required: bool
    low: float | None = None
    high: float | None = None
    integer: bool = False
    unit: str = ""
    meaning: str = ""


VALUE_RULES: dict[EventType, ValueRule] = {
    # Many platforms log sessions without a duration: empty means "duration unknown" (minutes
    # features then count as unknown, never as zero).
    EventType.SESSION: ValueRule(False, 0.0, 480.0, unit="minutes", meaning="session duration"),
    EventType.MODULE_COMPLETED: ValueRule(False, 1, 100, integer=True, meaning="module number"),
    EventType.EXERCISE_COMPLETED: ValueRule(False),
    EventType.MOOD_CHECKIN: ValueRule(True, 0, 10, unit="0-10", meaning="self-rated mood, 10 best"),
    EventType.PHQ9: ValueRule(True, 0, 27, integer=True, unit="points", meaning="PHQ-9 total"),
    EventType.GAD7: ValueRule(True, 0, 21, integer=True, unit="points", meaning="GAD-7 total"),
    EventType.MESSAGE_TO_COACH: ValueRule(False),
    EventType.MESSAGE_FROM_COACH: ValueRule(False),
    EventType.REMINDER_SENT: ValueRule(False),
    EventType.REMINDER_OPENED: ValueRule(False),
    EventType.DISCONTINUED: ValueRule(False),
}


@dataclass(frozen=True)
class Column:
    """One column of a contract table."""

    name: str
    kind: str  # "string", "timestamp", "number", "integer", "boolean", "category"
    required: bool = False
    low: float | None = None
    high: float | None = None
    categories: tuple[str, ...] = ()
    description: str = ""


SEX = ("female", "male", "other", "unknown")
EDUCATION = ("primary", "secondary", "tertiary", "unknown")

PATIENT_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", "string", required=True, description="stable pseudonymous identifier"),
    Column("enrolled_at", "timestamp", required=True, description="enrolment time, UTC"),
    Column("age", "integer", low=12, high=110, description="age in years at enrolment"),
    Column("sex", "category", categories=SEX, description="sex as recorded"),
    Column("education", "category", categories=EDUCATION, description="highest education level"),
    Column("race_ethnicity", "string", description="as recorded by the program"),
    Column("baseline_phq9", "integer", low=0, high=27, description="PHQ-9 at enrolment"),
    Column("baseline_gad7", "integer", low=0, high=21, description="GAD-7 at enrolment"),
    Column("program", "string", description="program or care pathway name"),
    Column("human_support", "boolean", description="a coach or clinician supports the patient"),
    Column("gamification", "boolean", description="badges, streaks, points shown"),
    Column("incentives", "boolean", description="financial or other incentives offered"),
    Column("reminders", "boolean", description="automatic reminders enabled"),
    Column("referral_source", "string", description="self, gp, employer, clinician, ..."),
    Column("site", "string", description="clinic, region or organisation"),
)

EVENT_COLUMNS: tuple[Column, ...] = (
    Column("patient_id", "string", required=True, description="must exist in patients"),
    Column("timestamp", "timestamp", required=True, description="event time, UTC"),
    Column("event_type", "category", required=True, categories=tuple(EventType), description="see EventType"),
    Column("value", "number", description="per event type, see VALUE_RULES"),
)

TABLES: dict[str, tuple[Column, ...]] = {"patients": PATIENT_COLUMNS, "events": EVENT_COLUMNS}

# A patient with a GAD-7 at or above this at baseline is counted as having comorbid anxiety.
GAD7_ANXIETY_CUTOFF = 10


class Cohort(NamedTuple):
    """A validated pair of contract tables in their canonical in-memory form."""

    patients: pd.DataFrame
    events: pd.DataFrame
