"""A program's [events] declaration applied to its raw tables: its column names and event types read as lapse's.

Declared types that map to one of lapse's types are renamed to it; the program's own types join the
vocabulary with a value rule from what their value means. For event types no one declared, `suggestion`
writes the declaration to paste into lapse.toml (type names are vocabulary, not patient values).
"""

from __future__ import annotations

import json
import re
from dataclasses import replace
from functools import lru_cache

import numpy as np
import pandas as pd

from config import EventsConfig
from config.events import VALUE_KINDS
from features.contract import Column, ValueRule
from features.parsing import Parsed

_CONTRACT_NAMES = {"patients": ("patient_id", "enrolled_at"), "events": ("patient_id", "timestamp", "event_type",
                                                                         "value")}
# Unknown types are suggested only when shaped like a type name, and only when few enough to be a vocabulary.
_TYPE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,39}")
_VOCABULARY_MAX = 50
_RULES = {
    "none": ValueRule(False),
    "duration": ValueRule(False, 0.0, None, unit="minutes", meaning="duration"),
    "count": ValueRule(False, 0.0, None, meaning="count"),
    "score": ValueRule(False, meaning="score"),
}


def _renamed(frame: pd.DataFrame | None, table: str, declared: EventsConfig) -> pd.DataFrame | None:
    if frame is None:
        return None
    names = {getattr(declared.columns, c): c for c in _CONTRACT_NAMES[table] if getattr(declared.columns, c) != c}
    names = {source: contract for source, contract in names.items() if source in frame.columns}
    return frame.rename(columns=names) if names else frame


def rename_to_contract(patients: pd.DataFrame | None, events: pd.DataFrame | None,
                       declared: EventsConfig) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The raw tables with the program's column names and mapped event types renamed to the contract's."""
    patients, events = _renamed(patients, "patients", declared), _renamed(events, "events", declared)
    renames = declared.renames()
    if events is not None and renames and "event_type" in events.columns:
        raw = events["event_type"]
        if raw.dtype == object or pd.api.types.is_string_dtype(raw):
            lowered = raw.str.strip().str.lower()
            mapped = lowered.map(renames)
            events = events.assign(event_type=mapped.where(mapped.notna(), raw))
    return patients, events


@lru_cache(maxsize=16)
def declared_columns(columns: tuple[Column, ...], declared: EventsConfig) -> tuple[Column, ...]:
    """The events columns with the program's own types added to the event_type vocabulary."""
    own = tuple(t.maps_to for t in declared.own_types())
    if not own:
        return columns
    return tuple(replace(c, categories=(*c.categories, *own)) if c.name == "event_type" else c for c in columns)


def declared_rules(declared: EventsConfig) -> list[ValueRule]:
    """The value rule of each of the program's own types, in vocabulary order."""
    return [_RULES[t.value] for t in declared.own_types()]


def suggestion(raw_types: pd.Series, types: Parsed, values: Parsed) -> str | None:
    """A ready-to-paste [events] declaration for the unknown event types shaped like type names, or None.

    The value meaning is guessed from the values the type's rows carry (none, whole numbers: count, else
    score); the user checks it, and can map a type onto one of lapse's types instead.
    """
    invalid = types.invalid
    if not invalid.any():
        return None
    names = raw_types[invalid].astype(str).str.strip().str.lower()
    distinct = pd.unique(names)
    if len(distinct) > _VOCABULARY_MAX:
        return None
    blocks = []
    for name in sorted(n for n in distinct if _TYPE_NAME.fullmatch(n)):
        rows = np.flatnonzero(invalid)[(names == name).to_numpy()]
        v = values.values[rows]
        v = v[~np.isnan(v)]
        kind = "none" if len(v) == 0 else ("count" if bool(np.all(np.mod(v, 1) == 0)) else "score")
        key = re.sub(r"[^a-z0-9_]", "_", name)
        blocks.append("\n".join([
            f"[events.types.{key if key == name else json.dumps(name)}]",
            f'maps_to = "{key}"'.ljust(32) + "# its own name, or one of lapse's types (e.g. \"session\")",
            "own_engagement = true".ljust(32) + "# the patient's own use of the program?",
            f'value = "{kind}"'.ljust(32) + f"# what its value means: {', '.join(VALUE_KINDS)}"]))
    if not blocks:
        return None
    return ("suggested declaration for lapse.toml (check each line, then paste):\n\n" + "\n\n".join(blocks))
