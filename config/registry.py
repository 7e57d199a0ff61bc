"""The MLflow registry names training writes and serving reads: the [registry] table."""

from __future__ import annotations

from config.base import Settings


class RegistryConfig(Settings):
    """One name for the registered model and one for each alias, shared by train, promote, serve, score-batch."""

    registered_model: str = "lapse-dropout"
    # `lapse train` points this alias at each new version.
    candidate_alias: str = "candidate"
    # `lapse promote` moves this alias; `lapse serve` and `lapse score-batch` use it by default.
    champion_alias: str = "champion"
