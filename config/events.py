"""A program's own data: its column names and event vocabulary, the [events] table.

Each declared type says what it becomes in lapse: one of lapse's event types (`maps_to = "session"`), or its
own name (the default), and then whether it is the patient's own engagement and what its value means.
lapse's own vocabulary is always known; a program declares only what differs.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from config.base import Settings

VALUE_KINDS = ("none", "duration", "score", "count")
# lapse's own event types (features.contract.EventType holds the same names; config sits below features).
LAPSE_TYPES = ("session", "module_completed", "exercise_completed", "mood_checkin", "phq9", "gad7",
               "message_to_coach", "message_from_coach", "reminder_sent", "reminder_opened", "discontinued")
TYPE_NAME = re.compile(r"[a-z][a-z0-9_]{0,39}")  # a type as lapse names it (a feature name's stem)
SOURCE_NAME = re.compile(r"[a-z][a-z0-9_.-]{0,39}")  # a type as the program's export names it


class EventTypeDeclaration(Settings):
    """One of the program's event types: what it becomes, whether it is own engagement, what its value means."""

    name: str
    # One of lapse's types, or the program's own name for it (default: the declared name, . and - as _).
    maps_to: str = ""
    # Only for a type of the program's own: does the patient do it (counts as engagement)?
    own_engagement: bool = True
    # Only for a type of the program's own: "duration", "score", "count" or "none".
    value: str = "none"
    # Clinician words for the type, plural (default: the name with spaces, e.g. "quiz submitted events").
    words: str = ""

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not SOURCE_NAME.fullmatch(value.strip().lower()):
            raise ValueError("an event type name is a letter then letters, digits, _, . or - (at most 40)")
        return value.strip().lower()

    @field_validator("value")
    @classmethod
    def _kind(cls, value: str) -> str:
        if value not in VALUE_KINDS:
            raise ValueError(f"value must be one of {', '.join(VALUE_KINDS)}")
        return value

    @model_validator(mode="after")
    def _target(self) -> "EventTypeDeclaration":
        target = self.maps_to.strip().lower() or re.sub(r"[.-]", "_", self.name)
        if not TYPE_NAME.fullmatch(target):
            raise ValueError("maps_to is one of lapse's event types or a name of letters, digits and _")
        object.__setattr__(self, "maps_to", target)
        defaults = {"own_engagement": True, "value": "none", "words": ""}  # what a dumped declaration carries
        fixed = sorted(name for name, default in defaults.items() if getattr(self, name) != default)
        if target in LAPSE_TYPES and fixed:
            raise ValueError(f"maps to lapse's type {target}, whose engagement, value and words are lapse's: "
                             f"leave out {', '.join(fixed)}")
        return self

    @property
    def is_lapse_type(self) -> bool:
        return self.maps_to in LAPSE_TYPES

    @property
    def label(self) -> str:
        return self.words or f"{self.maps_to.replace('_', ' ')} events"


class EventColumns(Settings):
    """The program's names of the contract columns (the patients and events tables)."""

    patient_id: str = "patient_id"
    enrolled_at: str = "enrolled_at"
    timestamp: str = "timestamp"
    event_type: str = "event_type"
    value: str = "value"


class EventsConfig(Settings):
    """The program's column names and event vocabulary; the default is lapse's own data contract.

    In lapse.toml, `[events.columns]` renames columns and each `[events.types.<name>]` table declares a type.
    """

    columns: EventColumns = Field(default_factory=EventColumns)
    types: tuple[EventTypeDeclaration, ...] = ()

    @field_validator("types", mode="before")
    @classmethod
    def _named_tables(cls, value: Any) -> Any:
        """`[events.types.quiz]` tables (a mapping by name) become declarations carrying their name."""
        if isinstance(value, dict):
            return tuple({**(v if isinstance(v, dict) else {}), "name": k} for k, v in value.items())
        return value

    @model_validator(mode="after")
    def _distinct(self) -> "EventsConfig":
        names = [t.name for t in self.types]
        if len(set(names)) != len(names):
            raise ValueError("an event type is declared twice")
        return self

    def own_types(self) -> tuple[EventTypeDeclaration, ...]:
        """The declared types that are the program's own (not lapse's), one per target name, in declared order."""
        seen: dict[str, EventTypeDeclaration] = {}
        for t in self.types:
            if not t.is_lapse_type:
                seen.setdefault(t.maps_to, t)
        return tuple(seen.values())

    def renames(self) -> dict[str, str]:
        """Source type name -> the type it becomes, for every declared type whose name changes."""
        return {t.name: t.maps_to for t in self.types if t.maps_to != t.name}
