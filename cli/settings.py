"""The settings of one run: lapse.toml (or --config), the environment, then the flags given."""

from __future__ import annotations

from pathlib import Path

from config import LapseSettings, load_settings


def run_settings(data: Path | None, config_file: Path | None, flags: dict | None = None) -> LapseSettings:
    """All settings for a command, with the flags the user gave (unset flags leave the settings alone)."""
    return load_settings(data_dir=data, config_file=config_file, flags=flags or {})
