"""The base of every settings class: strict (unknown keys refused), frozen, defaults plus keyword arguments only."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One domain's settings (a table of lapse.toml).

    Built directly (`LabelConfig(horizon_days=7)`), a domain reads only its defaults and its arguments:
    the environment and lapse.toml are read once, by `config.load_settings`, for all domains together.
    Copy with `model_copy(update=...)`, read with `model_dump()`.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    def __init__(self, **values: Any) -> None:
        # Defaults and arguments only: validated by pydantic without building the settings sources (which
        # costs about a millisecond per object; feature code compares settings objects in hot paths).
        BaseModel.__init__(self, **values)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_other_sources):
        return (init_settings,)
