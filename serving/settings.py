"""The serving configuration handed from `lapse serve` to the BentoML worker processes."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

from config import DEFAULT_PATHS, OutreachConfig, ServingConfig

ENV_VAR = "LAPSE_SERVING_CONFIG"


def serving_config() -> ServingConfig:
    """The configuration in LAPSE_SERVING_CONFIG (JSON of ServingConfig fields), else the defaults."""
    raw = os.environ.get(ENV_VAR, "").strip()
    if not raw:
        return ServingConfig()
    values = json.loads(raw)
    known = {f.name for f in dataclasses.fields(ServingConfig)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{ENV_VAR}: unknown setting(s): {', '.join(sorted(unknown))}")
    return ServingConfig(**values)


def config_env(config: ServingConfig) -> dict[str, str]:
    """Environment entries that make `serving_config()` return `config` in a child process."""
    return {ENV_VAR: json.dumps(dataclasses.asdict(config))}


def decision_log_url(config: ServingConfig) -> str:
    """The decision log's database URL: the configured one or SQLite in lapse's work folder."""
    if config.decision_log_url:
        return config.decision_log_url
    return DEFAULT_PATHS.decision_log_url


# The [outreach] table handed to the workers (JSON); the randomization secret is never in it.
OUTREACH_ENV = "LAPSE_POLICY_CONFIG"


def outreach_config() -> OutreachConfig:
    """The [outreach] settings in LAPSE_POLICY_CONFIG (JSON of OutreachConfig fields), else the defaults."""
    raw = os.environ.get(OUTREACH_ENV, "").strip()
    return OutreachConfig.model_validate_json(raw) if raw else OutreachConfig()


def outreach_env(config: OutreachConfig) -> dict[str, str]:
    """Environment entries that make `outreach_config()` return `config` in a child process."""
    return {OUTREACH_ENV: config.model_dump_json()}


HARDENING_ENV = "LAPSE_HARDENING"


@dataclass(frozen=True)
class Hardening:
    """How the service defends itself against faults and hostile traffic (to move into config/ later)."""

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


def hardening() -> Hardening:
    """The settings in LAPSE_HARDENING (JSON of Hardening fields), else the defaults."""
    raw = os.environ.get(HARDENING_ENV, "").strip()
    if not raw:
        return Hardening()
    values = json.loads(raw)
    known = {f.name for f in dataclasses.fields(Hardening)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"{HARDENING_ENV}: unknown setting(s): {', '.join(sorted(unknown))}")
    return Hardening(**values)


def hardening_env(settings: Hardening) -> dict[str, str]:
    """Environment entries that make `hardening()` return `settings` in a child process."""
    return {HARDENING_ENV: json.dumps(dataclasses.asdict(settings))}
