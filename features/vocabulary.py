"""The event vocabulary features are computed over: lapse's types, then the program's own declared types."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property, lru_cache

import numpy as np

from config import EventsConfig, EventTypeDeclaration
from features.contract import OWN_ENGAGEMENT, EventType


@dataclass(frozen=True, eq=False)
class Vocabulary:
    """Type names (position = type code; lapse's first, in EventType order) and which are own engagement."""

    names: tuple[str, ...]
    own: np.ndarray
    declared: tuple[EventTypeDeclaration, ...]  # the program's own types, in code order after lapse's

    @cached_property
    def codes(self) -> dict[str, int]:
        """Type name -> code."""
        return {name: code for code, name in enumerate(self.names)}


@lru_cache(maxsize=32)
def vocabulary(events: EventsConfig = EventsConfig()) -> Vocabulary:
    """lapse's event types followed by the program's own declared types (`[events]`)."""
    declared = events.own_types()
    names = (*(t.value for t in EventType), *(t.maps_to for t in declared))
    own = np.array([t in OWN_ENGAGEMENT for t in EventType] + [t.own_engagement for t in declared], dtype=bool)
    own.flags.writeable = False
    return Vocabulary(names, own, declared)

