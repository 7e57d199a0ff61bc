"""The serving configuration handed from `lapse serve` to the BentoML worker processes."""

from __future__ import annotations

import os

from config import DEFAULT_PATHS, ClinicianPageConfig, HardeningConfig, OutreachConfig, ServingConfig

ENV_VAR = "LAPSE_SERVING_CONFIG"


def serving_config() -> ServingConfig:
    """The configuration in LAPSE_SERVING_CONFIG (JSON of ServingConfig fields), else the defaults."""
    raw = os.environ.get(ENV_VAR, "").strip()
    return ServingConfig.model_validate_json(raw) if raw else ServingConfig()


def config_env(config: ServingConfig) -> dict[str, str]:
    """Environment entries that make `serving_config()` return `config` in a child process."""
    return {ENV_VAR: config.model_dump_json()}


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


# The hardening settings are the [hardening] table of lapse.toml (config/serving.py).
Hardening = HardeningConfig


def hardening() -> Hardening:
    """The settings in LAPSE_HARDENING (JSON of Hardening fields), else the defaults."""
    raw = os.environ.get(HARDENING_ENV, "").strip()
    return HardeningConfig.model_validate_json(raw) if raw else HardeningConfig()


def hardening_env(settings: Hardening) -> dict[str, str]:
    """Environment entries that make `hardening()` return `settings` in a child process."""
    return {HARDENING_ENV: settings.model_dump_json()}


PAGE_ENV = "LAPSE_CLINICIAN_PAGE"


def clinician_page_config() -> ClinicianPageConfig:
    """The [clinician_page] settings in LAPSE_CLINICIAN_PAGE (JSON of its fields), else the defaults."""
    raw = os.environ.get(PAGE_ENV, "").strip()
    return ClinicianPageConfig.model_validate_json(raw) if raw else ClinicianPageConfig()


def clinician_page_env(config: ClinicianPageConfig) -> dict[str, str]:
    """Environment entries that make `clinician_page_config()` return `config` in a child process."""
    return {PAGE_ENV: config.model_dump_json()}
