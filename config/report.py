"""What the engagement report shows and how it protects small groups: the [report] table."""

from __future__ import annotations

from pydantic import Field

from config.base import Settings


class ReportConfig(Settings):
    """What the engagement report shows and how it protects small groups."""

    # Any group, share numerator or its complement with 1..min_cell-1 patients is suppressed.
    min_cell: int = Field(10, ge=1)
    # Duration of use is reported for weeks 1..weeks; level of use and completion count
    # the first weeks*7 days, among patients observed that long.
    weeks: int = Field(12, ge=1)
    # Uptake within this many days of enrolment, among patients observed that long.
    uptake_days: int = Field(14, ge=1)
    # Lower edges of the age bands: (18, 25) gives "<18", "18-24", "25+".
    age_bands: tuple[int, ...] = (18, 25, 35, 45, 55, 65)
    subgroups: tuple[str, ...] = ("sex", "age_band", "education", "human_support", "program", "referral_source")
    # Weeks whose active share the subgroup table shows.
    subgroup_weeks: tuple[int, ...] = (1, 4, 12)
    # Days at which the Kaplan-Meier survival is tabulated.
    survival_days: tuple[int, ...] = (7, 14, 28, 56, 84)
    # The day whose Kaplan-Meier survival the subgroup table shows.
    subgroup_survival_day: int = 28
    confidence: float = Field(0.95, gt=0, lt=1)
    histogram_bins: int = Field(20, ge=1)
