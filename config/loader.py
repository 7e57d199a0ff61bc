"""Reading the settings: defaults < lapse.toml < environment (LAPSE_<TABLE>__<KEY>) < command-line flags.

Validation is the library's (pydantic-settings): an unknown table or key, a bad value, each is refused
once, and the message names where it was set (the file and [table] key, the environment variable or the
flag) and the key.
"""

from __future__ import annotations

import tomllib
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_settings import EnvSettingsSource, SettingsError

from config.errors import ConfigError
from config.paths import DEFAULT_PATHS
from config.settings import ENV_NESTED_DELIMITER, ENV_PREFIX, SHARED_TABLES, LapseSettings

Key = tuple[str, ...]
# A command-line value: the flag as typed (e.g. "--horizon"), the setting it sets, the value.
Flags = Mapping[str, tuple[Key, Any]]


def settings_file(data_dir: str | Path | None = None, config_file: str | Path | None = None) -> Path | None:
    """The settings file to read: --config FILE, else lapse.toml in the data folder if there is one."""
    if config_file is not None:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"{path}: no such settings file")
        return path
    if data_dir is not None:
        path = Path(data_dir) / DEFAULT_PATHS.config_file
        if path.is_file():
            return path
    return None


def read_toml(path: Path) -> dict[str, Any]:
    """The tables of a TOML file; a file that is not TOML is refused with the line and column."""
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: could not be read ({type(exc).__name__})") from None


def _legacy_program(data_dir: Path | None, tables: dict[str, Any], source: Path | None) -> Path | None:
    """A deprecated program.json in the data folder, read as the [program] table when lapse.toml has none."""
    if data_dir is None:
        return None
    path = Path(data_dir) / DEFAULT_PATHS.legacy_program_file
    if not path.is_file():
        return None
    if "program" in tables:
        raise ConfigError(f"{path}: the program is also set in the [program] table of {source}; keep one "
                          f"(program.json is deprecated)")
    warnings.warn(f"{path}: program.json is deprecated, move it to the [program] table of "
                  f"{DEFAULT_PATHS.config_file}", FutureWarning, stacklevel=3)
    return path


def _nest(flags: Flags) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flags.values():
        node = out
        for part in key[:-1]:
            node = node.setdefault(part, {})
        node[key[-1]] = value
    return out


def _merge(*layers: Mapping[str, Any]) -> dict[str, Any]:
    """Later layers win, key by key, tables merged."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, Mapping) and isinstance(out.get(key), dict):
                out[key] = _merge(out[key], value)
            else:
                out[key] = dict(value) if isinstance(value, Mapping) else value
    return out


def _has(layer: Mapping[str, Any], key: Key) -> bool:
    node: Any = layer
    for part in key:
        if not isinstance(node, Mapping) or part not in node:
            return False
        node = node[part]
    return True


def _known(key: Key) -> list[str]:
    """The settings a table accepts (for 'unknown setting' messages)."""
    model: Any = LapseSettings
    for part in key:
        info = model.model_fields.get(part)
        if info is None or not (isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel)):
            return []
        model = info.annotation
    shared = {name for domain, name, _ in SHARED_TABLES if key == (domain,)}
    return sorted(set(model.model_fields) - shared)


def _table_key(key: Key) -> str:
    table = [p for p in key[:-1]]
    return f"[{'.'.join(table)}] {key[-1]}" if table else f"[{key[-1]}]"


def _describe(error: dict, files: dict[str, Any], env: dict[str, Any], flags: Flags, source: Path | None,
              program_json: Path | None) -> str:
    key: Key = tuple(str(p) for p in error["loc"] if not isinstance(p, int))
    for domain, name, table in SHARED_TABLES:  # an error in a shared table is reported once, under its table
        if key[:2] == (domain, name):
            key = (table, *key[2:])
    if error["type"] == "extra_forbidden":
        known = _known(key[:-1])
        what = ("unknown table" if len(key) == 1 else "unknown setting") + (f" (known: {', '.join(known)})"
                                                                            if known else "")
    else:
        what = error["msg"].removeprefix("Value error, ")
    if not key:
        return what
    for flag, (flag_key, _) in flags.items():
        if key[:len(flag_key)] == flag_key or flag_key[:len(key)] == key:
            return f"{flag}: {what}"
    if _has(env, key):
        return f"environment {ENV_PREFIX}{ENV_NESTED_DELIMITER.join(p.upper() for p in key)}: {what}"
    if program_json is not None and key[0] == "program":
        return f"{program_json}: {'.'.join(key[1:]) or 'program'}: {what}"
    where = f"{source}: " if source is not None and _has(files, key) else ""
    return f"{where}{_table_key(key)}: {what}"


def load_settings(data_dir: str | Path | None = None, config_file: str | Path | None = None,
                  flags: Flags | None = None) -> LapseSettings:
    """All settings: defaults, then lapse.toml (--config FILE, else the data folder's), then the
    environment (LAPSE_<TABLE>__<KEY>, e.g. LAPSE_LABELS__HORIZON_DAYS), then command-line flags.

    Raises ConfigError naming the file, variable or flag and the key of every problem.
    """
    flags = dict(flags or {})
    source = settings_file(data_dir, config_file)
    tables = read_toml(source) if source is not None else {}
    program_json = _legacy_program(Path(data_dir) if data_dir is not None else None, tables, source)
    files = dict(tables)
    if program_json is not None:
        from config.program import ProgramConfig

        files["program"] = ProgramConfig.from_file(program_json).model_dump()
    try:
        env = EnvSettingsSource(LapseSettings)()
    except SettingsError as exc:
        raise ConfigError(f"environment ({ENV_PREFIX}...): {exc}") from None
    for domain, name, table in SHARED_TABLES:
        if _has(env, (domain, name)):
            raise ConfigError(f"environment {ENV_PREFIX}{domain.upper()}{ENV_NESTED_DELIMITER}{name.upper()}...: "
                              f"set these as {ENV_PREFIX}{table.upper()}{ENV_NESTED_DELIMITER}...")
        if _has(files, (domain, name)):
            raise ConfigError(f"{source}: [{domain}] {name}: set these in the [{table}] table")
    try:
        return LapseSettings.model_validate(_merge(files, env, _nest(flags)))
    except ValidationError as exc:
        lines = list(dict.fromkeys(_describe(e, files, env, flags, source, program_json) for e in exc.errors()))
        raise ConfigError("\n".join(lines)) from None
