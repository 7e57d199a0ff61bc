"""The settings handed from `lapse serve` to the BentoML worker processes: each table travels as the JSON of
its settings object in one environment variable, and the worker validates it with the same model (unknown keys
refused by pydantic). The randomization secret of [outreach] never travels this way."""

from __future__ import annotations

import os
from typing import TypeVar

from pydantic import BaseModel

from config import DEFAULT_PATHS, ClinicianPageConfig, HardeningConfig, OutreachConfig, ServingConfig

ENV_VAR = "LAPSE_SERVING_CONFIG"
OUTREACH_ENV = "LAPSE_POLICY_CONFIG"
HARDENING_ENV = "LAPSE_HARDENING"
PAGE_ENV = "LAPSE_CLINICIAN_PAGE"
# The hardening settings are the [hardening] table of lapse.toml (config/serving.py).
Hardening = HardeningConfig
Table = TypeVar("Table", bound=BaseModel)


def _received(kind: type[Table], variable: str) -> Table:
    """The settings in `variable` (JSON of `kind`'s fields), else `kind`'s defaults."""
    raw = os.environ.get(variable, "").strip()
    return kind.model_validate_json(raw) if raw else kind()


def _handed(settings: BaseModel, variable: str) -> dict[str, str]:
    """The environment entry that makes `_received` return `settings` in a child process."""
    return {variable: settings.model_dump_json()}


def serving_config() -> ServingConfig:
    """The [serving] settings of this worker."""
    return _received(ServingConfig, ENV_VAR)


def config_env(config: ServingConfig) -> dict[str, str]:
    return _handed(config, ENV_VAR)


def outreach_config() -> OutreachConfig:
    """The [outreach] settings of this worker (without the secret)."""
    return _received(OutreachConfig, OUTREACH_ENV)


def outreach_env(config: OutreachConfig) -> dict[str, str]:
    return _handed(config, OUTREACH_ENV)


def hardening() -> HardeningConfig:
    """The [hardening] settings of this worker."""
    return _received(HardeningConfig, HARDENING_ENV)


def hardening_env(settings: HardeningConfig) -> dict[str, str]:
    return _handed(settings, HARDENING_ENV)


def clinician_page_config() -> ClinicianPageConfig:
    """The [clinician_page] settings of this worker."""
    return _received(ClinicianPageConfig, PAGE_ENV)


def clinician_page_env(config: ClinicianPageConfig) -> dict[str, str]:
    return _handed(config, PAGE_ENV)


def decision_log_url(config: ServingConfig) -> str:
    """The decision log's database URL: the configured one or SQLite in lapse's work folder."""
    if config.decision_log_url:
        return config.decision_log_url
    return DEFAULT_PATHS.decision_log_url
