"""The program's recommended use: the [program] table."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import Field, ValidationError

from config.base import Settings
from config.errors import ConfigError


class ProgramConfig(Settings):
    """The program's recommended use: the dose patients are told to aim for."""

    sessions_per_week: float = Field(3.0, gt=0)
    modules_per_week: float = Field(1.0, gt=0)
    # Completion means reaching the recommended dose: this many modules.
    core_modules: int = Field(8, gt=0)

    @classmethod
    def from_file(cls, path: Path) -> "ProgramConfig":
        """Read a (deprecated) program.json: any subset of the fields over the defaults."""
        path = Path(path)
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{path}: could not be read as JSON ({type(exc).__name__})") from None
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: must be a JSON object of settings")
        try:
            return cls(**raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join(str(p) for p in first["loc"])
            raise ConfigError(f"{path}: {key}: {first['msg']}") from None
