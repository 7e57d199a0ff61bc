"""The serving configuration handed from `lapse serve` to the BentoML worker processes."""

from __future__ import annotations

import dataclasses
import json
import os

from config import DEFAULT_PATHS, ServingConfig

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
