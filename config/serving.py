"""How `lapse serve` runs the risk service and its clinician page: [serving] and [clinician_page]."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from config.base import Settings
from config.registry import RegistryConfig


class ServingConfig(Settings):
    """How `lapse serve` runs the risk service: where it listens, what it accepts, what it loads.

    `registry` is the [registry] table (set there in lapse.toml). `alias` is the alias served: the
    registry's champion alias unless another (e.g. the candidate alias) is asked for.
    """

    host: str = "127.0.0.1"
    port: int = Field(3000, gt=0, lt=65536)
    workers: int = Field(1, ge=1)
    # Patients per /score or /triage request (more is refused with 422).
    max_batch_size: int = Field(1000, ge=1)
    # Raw events per patient in one request.
    max_events_per_patient: int = Field(5000, ge=1)
    # Request bodies above this size are refused with 413.
    max_body_bytes: int = Field(8 * 1024 * 1024, ge=1)
    registry: RegistryConfig = Field(default_factory=RegistryConfig)
    alias: str = ""
    # SQLAlchemy URL of the decision log; empty means SQLite under Paths.work (Paths.decision_log_url).
    decision_log_url: str = ""
    # SQLite only: "full" flushes every commit to disk (survives power loss); "normal" survives a
    # crash of the service but not of the machine, and answers faster on slow disks.
    decision_log_sync: Literal["full", "normal"] = "full"
    # "model": tier cut-points from the model's metadata; else a JSON file {"tiers": [...], "trigger_risk": ...}.
    tiers_source: str = "model"
    # Seconds between checks that the alias still points at the served version; 0 turns polling off.
    poll_seconds: float = Field(0.0, ge=0)
    # Reasons returned per patient by /score and /triage, and kept per patient by `lapse score-batch`.
    top_reasons: int = Field(5, ge=0)
    # Predictions made on start-up before the service reports ready.
    warmup_predictions: int = Field(20, ge=0)
    # Seconds a request may take before BentoML answers 504.
    request_timeout_s: float = Field(30.0, gt=0)
    # Data folder (patients + events tables) the clinician page reads timelines from; empty: none.
    data_dir: str = ""
    # Where the model comes from: "registry" (the MLflow alias), "bento" (the model packed in the Bento
    # by `lapse build`), or "auto": the Bento's model when the service runs inside a Bento, else the registry.
    model_source: Literal["auto", "registry", "bento"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _served_alias(cls, data: Any) -> Any:
        """No alias given: serve the registry's champion alias."""
        if isinstance(data, dict) and not data.get("alias"):
            registry = data.get("registry")
            if isinstance(registry, dict):
                champion = registry.get("champion_alias", RegistryConfig().champion_alias)
            else:
                champion = (registry or RegistryConfig()).champion_alias
            data = {**data, "alias": champion}
        return data

    @property
    def model_name(self) -> str:
        """The registered model's name (`registry.registered_model`; read by serving/ under this name)."""
        return self.registry.registered_model


class ClinicianPageConfig(Settings):
    """The clinician page at /ui of the risk service: sessions, list size and the timeline."""

    # A signed-in session lasts this long, then the key must be entered again.
    session_hours: float = Field(8.0, gt=0)
    # Most patients the list sends to the browser (highest risk first).
    list_limit: int = Field(5000, ge=1)
    # Days of engagement shown before the latest score.
    timeline_days: int = Field(28, ge=1)
    # Largest login form or page request body accepted.
    max_body_bytes: int = Field(4096, ge=1)
    # Seconds between checks that the data folder's tables changed (they are re-read if so).
    data_check_seconds: float = Field(30.0, ge=0)
