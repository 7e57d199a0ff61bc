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
    # Hours a stored answer to an Idempotency-Key is kept (then the key may be used again).
    idempotency_ttl_hours: float = Field(24.0, gt=0)
    # Where to POST support triggers (empty: no webhook), and the secret their HMAC-SHA256 signature uses
    # (set it with LAPSE_SERVING__WEBHOOK_SECRET, not in lapse.toml).
    webhook_url: str = ""
    webhook_secret: str = ""
    # Delivery attempts per trigger, the wait before the first retry (doubled each time), and the
    # seconds one attempt may take.
    webhook_attempts: int = Field(6, ge=1)
    webhook_backoff_s: float = Field(2.0, gt=0)
    webhook_timeout_s: float = Field(10.0, gt=0)

    # Where the model comes from: "registry" (the MLflow alias), "bento" (the model packed in the Bento
    # by `lapse build`), or "auto": the Bento's model when the service runs inside a Bento, else the registry.
    model_source: Literal["auto", "registry", "bento"] = "auto"

    @model_validator(mode="after")
    def _webhook_signed(self) -> "ServingConfig":
        if self.webhook_url and not self.webhook_secret:
            raise ValueError("webhook_url needs webhook_secret (LAPSE_SERVING__WEBHOOK_SECRET) to sign deliveries")
        if self.webhook_url and not self.webhook_url.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return self

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
    # Patients in the Today queue when the outreach policy sets no capacity_per_day (the team's capacity).
    today_capacity: int = Field(20, ge=1)
    # A patient with no use of the program for this long counts as lapsed (0: the model's horizon);
    # lapsed longer ago than recently_lapsed_days they leave the Today queue (still in the full list).
    lapsed_after_days: int = Field(0, ge=0)
    recently_lapsed_days: int = Field(28, ge=1)


class HardeningConfig(Settings):
    """How the service defends itself against faults and hostile traffic; the [hardening] table."""

    # SQLite: how long a commit waits for a lock before it fails (then /readyz says why, and it is retried).
    decision_log_busy_ms: int = 30_000
    # Seconds between attempts to reach a failed decision log again.
    decision_log_retry_s: float = 2.0
    # A connection must send a request's complete headers within this many seconds of opening, or of its
    # previous answer; idle and slow connections are closed after it.
    header_timeout_s: float = 10.0
    # Open connections one worker holds at most; more are answered 429 with Retry-After and closed.
    max_connections: int = 1000
    # Seconds a refused client is told to wait (Retry-After).
    retry_after_s: int = 5
    # Failed sign-ins or wrong API keys one client may make per window before it gets 429.
    failed_auth_limit: int = 10
    failed_auth_window_s: float = 300.0
    # The origin the clinician page is served from (https://lapse.example.org); empty: the bound address.
    public_origin: str = ""
    # Seconds a stopping server waits for in-flight requests before it stops its workers.
    drain_timeout_s: float = 20.0
    # Times (as_of, enrolment, events) before this are refused as impossible for a digital program.
    earliest_time: str = "2000-01-01T00:00:00+00:00"
    # Seconds the clinician overview is reused before it is built again (keeps page work off /score).
    overview_cache_s: float = 10.0
