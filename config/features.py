"""Windows, snapshot days and the program's pace used by the feature code: the [features] table."""

from __future__ import annotations

from pydantic import Field, field_validator

from config.base import Settings
from config.events import EventsConfig
from config.program import ProgramConfig


class FeatureConfig(Settings):
    """Windows and snapshot days used by the feature code, and the program's pace.

    `program` is the [program] table and `events` the [events] table: in lapse.toml they are set there, not
    inside [features].
    """

    windows_days: tuple[int, ...] = (3, 7, 14)
    as_of_days: tuple[int, ...] = (3, 7, 14, 21, 28)
    recent_share_days: int = Field(3, ge=1)
    program: ProgramConfig = Field(default_factory=ProgramConfig)
    # The [events] table: the program's own event types become features too.
    events: EventsConfig = Field(default_factory=EventsConfig)
    # The mood trend needs check-ins at least this many days apart (bunched ones give wild slopes).
    mood_trend_min_span_days: float = Field(2.0, gt=0)
    # Calendar snapshots for training (`lapse features --calendar`): every this many days from the first enrolment.
    calendar: bool = False
    calendar_every_days: int = Field(7, ge=1)

    @field_validator("as_of_days", "windows_days")
    @classmethod
    def _days(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        """Whole days, sorted and without repeats; at least one, none negative."""
        out = tuple(sorted(set(days)))
        if not out or out[0] < 0:
            raise ValueError("must be a non-empty list of whole days >= 0")
        return out
