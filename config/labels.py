"""How dropout is defined: the [labels] table."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from config.base import Settings


class LabelConfig(Settings):
    """How dropout is defined: an inactivity window and/or an explicit discontinuation event."""

    horizon_days: int = Field(14, ge=1)
    # "inactivity": no own engagement in the horizon; "discontinuation": an explicit
    # discontinued event in the horizon; "either": whichever comes first.
    definition: Literal["inactivity", "discontinuation", "either"] = "either"
    # A patient counts as still engaged at the as-of time if they had own engagement
    # within this many days before it (and have not discontinued).
    engaged_within_days: int = Field(14, ge=1)
