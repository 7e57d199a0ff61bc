"""Windows, snapshot days and the program's pace used by the feature code: the [features] table."""

from __future__ import annotations

from pydantic import AwareDatetime, Field, field_validator, model_validator

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
    # Calendar snapshots (`--calendar`, `--as-of-dates`): every `calendar_every_days` from `calendar_start`
    # (default: the midnight, UTC, before the first enrolment) up to `calendar_end` (default: the data's end),
    # for each patient those strictly after their enrolment. One date: start = end.
    calendar: bool = False
    calendar_every_days: int = Field(7, ge=1)
    calendar_start: AwareDatetime | None = None
    calendar_end: AwareDatetime | None = None

    @field_validator("as_of_days", "windows_days")
    @classmethod
    def _days(cls, days: tuple[int, ...]) -> tuple[int, ...]:
        """Whole days, sorted and without repeats, none negative (as_of_days may be empty with calendar on)."""
        out = tuple(sorted(set(days)))
        if out and out[0] < 0:
            raise ValueError("must be a list of whole days >= 0")
        return out

    @model_validator(mode="after")
    def _some_snapshots(self) -> "FeatureConfig":
        if not self.windows_days:
            raise ValueError("windows_days must be a non-empty list of whole days >= 0")
        if not self.as_of_days and not self.calendar:
            raise ValueError("as_of_days is empty and calendar is off: no snapshots to take")
        if self.calendar_start and self.calendar_end and self.calendar_end < self.calendar_start:
            raise ValueError("calendar_end is before calendar_start")
        return self
