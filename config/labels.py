"""How dropout is defined: the [labels] table."""

from __future__ import annotations

from pydantic import Field, field_validator

from config.base import Settings

DEFINITIONS = ("inactivity", "discontinuation", "either")


class LabelConfig(Settings):
    """How dropout is defined: an inactivity window and/or an explicit discontinuation event."""

    horizon_days: int = Field(14, ge=1)
    # "inactivity": no own engagement in the horizon; "discontinuation": an explicit
    # discontinued event in the horizon; "either": whichever comes first.
    definition: str = "either"
    # A patient counts as still engaged at the as-of time if they had own engagement
    # within this many days before it (and have not discontinued).
    engaged_within_days: int = Field(14, ge=1)

    @field_validator("definition")
    @classmethod
    def _known_definition(cls, value: str) -> str:
        if value not in DEFINITIONS:
            raise ValueError(f"definition must be one of {', '.join(DEFINITIONS)}")
        return value
