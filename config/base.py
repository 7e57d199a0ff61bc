"""The base of every settings class: strict (unknown keys refused), frozen, defaults plus keyword arguments only."""

from __future__ import annotations

import dataclasses
from typing import Any

from pydantic import BaseModel
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """One domain's settings (a table of lapse.toml).

    Built directly (`LabelConfig(horizon_days=7)`), a domain reads only its defaults and its arguments:
    the environment and lapse.toml are read once, by `config.load_settings`, for all domains together.

    For the modules that still treat settings as dataclasses (`dataclasses.replace`, `asdict`, `fields`),
    each subclass also carries `__dataclass_fields__` (and `__dataclass_params__`) describing its fields (built by `make_dataclass`, with
    the annotations as written); new code should use `model_copy(update=...)` and `model_dump()`.
    """

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    def __init__(self, **values: Any) -> None:
        # Defaults and arguments only: validated by pydantic without building the settings sources (which
        # costs about a millisecond per object; feature code compares settings objects in hot paths).
        BaseModel.__init__(self, **values)

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, **_other_sources):
        return (init_settings,)

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        written: dict[str, Any] = {}
        for klass in reversed(cls.__mro__):
            written.update(klass.__dict__.get("__annotations__", {}))
        spec = [(name, written.get(name, info.annotation)) for name, info in cls.model_fields.items()]
        made = dataclasses.make_dataclass(cls.__name__, spec, frozen=True)
        cls.__dataclass_fields__ = made.__dataclass_fields__
        cls.__dataclass_params__ = made.__dataclass_params__
