"""Settings of the outreach stage: the trigger policy and the effect analysis (docs/outreach.md explains each)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from config.outreach import Risk, TriggerPolicy


class PolicySettings(TriggerPolicy):
    """What the policies run on: the [outreach] trigger policy with its risk threshold resolved and its secret.

    A plain model that reads only its arguments, never the environment: the service builds one per request
    from the [outreach] table (`outreach.configured.policy_settings`, which also reads the secret).
    """

    # risk: support when risk >= this; benefit: only patients at or above it are ranked.
    risk_threshold: Risk = 0.5
    # Key of the HMAC-SHA256 draw; keep it secret so nobody can predict (or game) who is offered support.
    secret: SecretStr = SecretStr("")

    @model_validator(mode="after")
    def _has_secret(self) -> "PolicySettings":
        if self.policy == "randomized" and not self.secret.get_secret_value():
            raise ValueError("secret must be set for the randomized policy (LAPSE_OUTREACH_SECRET)")
        return self

    @property
    def offered_probability(self) -> float:
        """The randomization probability after clipping into [probability_min, probability_max]."""
        return min(max(self.probability, self.probability_min), self.probability_max)

    @cached_property
    def policy_version(self) -> str:
        """The version recorded on decisions: `version`, else the policy name and a hash of its settings.

        Computed once per settings object (it is read for every decision). The hash covers every setting
        but the secret and `version` (JSON, keys sorted), so logs written before stay comparable.
        """
        if self.version:
            return self.version
        public = self.model_dump(exclude={"secret", "version"})
        digest = hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()[:10]
        return f"{self.policy}-{digest}"

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> "PolicySettings":
        """A copy; with `update`, validated like a new object (so the rules hold and the version is recomputed)."""
        if not update:
            return super().model_copy(deep=deep)
        return type(self)(**{**self.model_dump(), **update})


class EffectColumns(BaseModel):
    """Column names of a decisions table; map them to another program's MRT log."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str = "unit"
    time: str = "time"
    action: str = "action"
    probability: str = "probability"
    outcome: str = "outcome"
    # Optional: the risk tier the effect is moderated by ("" to leave it out).
    tier: str = "tier"


class EffectSettings(BaseSettings):
    """What `run_effect` reads, fits and writes. Environment: LAPSE_EFFECT_<FIELD>."""

    model_config = SettingsConfigDict(env_prefix="LAPSE_EFFECT_", frozen=True, extra="forbid")

    # The decisions table: a CSV/Parquet file, or (decisions_db) the decision log + outcomes in a database.
    decisions: Path | None = None
    decisions_db: str = ""
    out: Path
    # decisions_db only: the outcome is re-engagement within this many days after the decision.
    window_days: int = Field(default=7, ge=1)
    # decisions_db only: a features table (patient_id, as_of, features; .parquet or .csv) whose columns can be
    # moderators, joined to each decision by patient and as_of.
    features: Path | None = None
    columns: EffectColumns = Field(default_factory=EffectColumns)
    # Numeric moderators: the effect is also fitted as a straight line in each (centred at its mean).
    moderators: tuple[str, ...] = ()
    # Control covariates: they soak up outcome noise (more precision) but do not change what is estimated.
    controls: tuple[str, ...] = ()
    # The fixed reference probability p~ of the weights and centring; None: the mean probability.
    reference_probability: float | None = Field(default=None, gt=0.0, lt=1.0)
    confidence: float = Field(default=0.95, gt=0.5, lt=1.0)
    # "mancl-derouen" (bias-reduced, Boruvka et al. 2018) or "hc0" (plain cluster sandwich).
    small_sample: Literal["mancl-derouen", "hc0"] = "mancl-derouen"
    # A tier enters the moderated analysis only with this many available decisions, both actions and
    # more than one outcome value.
    min_tier_decisions: int = Field(default=30, ge=2)
    # MLflow tracking URI; empty: no run is logged.
    tracking_uri: str = ""
    experiment: str = "lapse-effect"

    @model_validator(mode="after")
    def _one_source(self) -> "EffectSettings":
        if (self.decisions is None) == (not self.decisions_db):
            raise ValueError("give exactly one of decisions (a file) and decisions_db (a database URL)")
        return self

    @property
    def source_name(self) -> str:
        """The decisions' source as recorded on the run: the file's name, or "decision log"."""
        return self.decisions.name if self.decisions is not None else "decision log"
