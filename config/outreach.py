"""Who is offered human support, and from which effect estimate: the [outreach] table (docs/outreach.md).

`TriggerPolicy` declares the policy's settings once, with their bounds and the coherence rule; the table
(`OutreachConfig`) and what the policies run on (`outreach.settings.PolicySettings`) are both built from it.
The randomization secret is not a setting of this table: it is read only from the environment
(LAPSE_OUTREACH_SECRET) or from the file named by `secret_file`, so lapse.toml never holds it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from config.base import Settings

# A risk (a probability of dropout): thresholds and the randomization band.
Risk = Annotated[float, Field(ge=0.0, le=1.0)]


class TriggerPolicy(BaseModel):
    """The trigger policy: which policy, its band and probability, and capacity (one declaration for both uses)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    # risk: support at or above a risk; randomized: a micro-randomized trial in a risk band; benefit:
    # highest expected benefit first (needs an effect estimate; without one it ranks by risk and says so).
    policy: Literal["risk", "randomized", "benefit"] = "risk"
    # randomized: patients with risk in [band_low, band_high] are offered support with probability p.
    band_low: Risk = 0.2
    band_high: Risk = 1.0
    probability: float = Field(0.5, gt=0.0, lt=1.0)
    # p is clipped into [probability_min, probability_max] (deployed MRTs keep 0.2-0.8, domain.md).
    probability_min: float = Field(0.2, gt=0.0, lt=1.0)
    probability_max: float = Field(0.8, gt=0.0, lt=1.0)
    # Contacts per calendar day (UTC) over all coaches, and per coach per day (/triage); None: no limit.
    capacity_per_day: int | None = Field(None, ge=0)
    capacity_per_coach: int | None = Field(None, ge=0)
    # Recorded on every decision; empty: the policy name and a hash of the settings (the secret left out).
    version: str = ""

    @model_validator(mode="after")
    def _coherent(self) -> "TriggerPolicy":
        if self.band_low > self.band_high:
            raise ValueError("band_low must not exceed band_high")
        if self.probability_min > self.probability_max:
            raise ValueError("probability_min must not exceed probability_max")
        return self


class OutreachConfig(Settings, TriggerPolicy):
    """The [outreach] table: the trigger policy the service decides support with, and where its inputs are."""

    # risk: support at or above this risk; None: the served model's own trigger risk.
    risk_threshold: Risk | None = None
    # A file holding the randomization secret (one line); empty: the LAPSE_OUTREACH_SECRET variable.
    secret_file: str = ""
    # effect.json written by `lapse effect`: the benefit policy's estimate; empty: none yet.
    effect_file: str = ""

    def trigger_policy(self) -> dict[str, object]:
        """The values of this table's TriggerPolicy settings (what PolicySettings takes from it)."""
        return self.model_dump(include=set(TriggerPolicy.model_fields))
