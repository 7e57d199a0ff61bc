"""The deprecated program.json: its settings checked by `lapse validate` (lapse.toml's [program] table
replaces it; config/loader.py reads it as that table)."""

from __future__ import annotations

import json
from pathlib import Path

from config import ProgramConfig
from features.problems import Problem

PROGRAM_FILE = "program.json"


def check_program(raw: object, source: str = PROGRAM_FILE) -> list[Problem]:
    """Problems in a program.json object: unknown settings, or values that are not positive numbers."""
    if not isinstance(raw, dict):
        return [Problem(source, None, "bad_program", "must be a JSON object of settings")]
    spec = {name: getattr(info.annotation, "__name__", str(info.annotation)) for name, info in ProgramConfig.model_fields.items()}
    out = []
    unknown = sorted(set(raw) - set(spec))
    if unknown:
        out.append(Problem(source, None, "bad_program",
                           f"unknown setting(s) {', '.join(unknown)} (known: {', '.join(spec)})"))
    for name, kind in spec.items():
        if name not in raw or kind not in ("int", "float"):
            continue
        v = raw[name]
        ok_type = isinstance(v, int) if kind == "int" else isinstance(v, (int, float))
        if isinstance(v, bool) or not ok_type or not v > 0:
            what = "a positive whole number" if kind == "int" else "a positive number"
            out.append(Problem(source, None, "bad_program", f"setting '{name}' must be {what}"))
    return out


def check_program_file(path: str | Path) -> list[Problem]:
    """Problems in a program.json file (unreadable JSON included)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return [Problem(str(path), None, "unreadable", f"could not be read ({type(exc).__name__})")]
    except json.JSONDecodeError as exc:
        return [Problem(str(path), None, "unreadable", f"is not valid JSON (line {exc.lineno}, column {exc.colno})")]
    return check_program(raw, str(path))
