"""Reading a data folder for the report and writing report.html / report.json atomically."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from config import EventsConfig, LabelConfig, ProgramConfig, ReportConfig
from features.atomic import atomic_path
from features.io import META_FILE, meta_data_end
from features.program_file import PROGRAM_FILE, check_program_file
from features.validate import format_report, load_cohort
from reporting.build import build_report
from reporting.html import render_html

HTML_FILE = "report.html"
JSON_FILE = "report.json"
# The report is written to be shared: readable by everyone, whatever the process umask.
FILE_MODE = 0o644


class ReportInputError(ValueError):
    """A data folder cannot be reported on; the message names the file and field."""


class ReportInputs(NamedTuple):
    """What the report is built from: the validated cohort, the end of observation and the program."""

    patients: pd.DataFrame
    events: pd.DataFrame
    data_end: pd.Timestamp
    program: ProgramConfig
    sources: dict[str, str]


def read_program(data_dir: Path) -> tuple[ProgramConfig, str]:
    """The program's recommended use from program.json in the folder, else the defaults; and where it came from."""
    path = Path(data_dir) / PROGRAM_FILE
    if not path.is_file():
        return ProgramConfig(), "lapse defaults (no program.json)"
    problems = check_program_file(path)
    if problems:
        raise ReportInputError(format_report(problems))
    return ProgramConfig.from_file(path), PROGRAM_FILE


def load_inputs(data_dir: str | Path, declared: EventsConfig = EventsConfig()) -> ReportInputs:
    """Load and validate a data folder for the report (ContractError or ReportInputError when unusable);
    `declared` is the program's [events] table."""
    data_dir = Path(data_dir)
    cohort = load_cohort(data_dir, declared=declared)
    try:
        data_end = meta_data_end(data_dir)
    except ValueError as exc:
        raise ReportInputError(str(exc)) from None
    sources = {}
    if data_end is not None:
        sources["data_end"] = f"from {META_FILE}"
    elif len(cohort.events):
        data_end = cohort.events["timestamp"].max()
        sources["data_end"] = "the latest event, as there is no meta.json"
    else:
        raise ReportInputError(f"{data_dir}: no events and no {META_FILE} with data_end: nothing to report")
    program, sources["program"] = read_program(data_dir)
    return ReportInputs(cohort.patients, cohort.events, data_end, program, sources)


def write_files(out_dir: str | Path, files: dict[str, str]) -> dict[str, Path]:
    """Write each named text file into out_dir (mode 0644); all are fully written to temporary files first,
    then renamed."""
    out_dir = Path(out_dir)
    with ExitStack() as stack:
        # Every file is written before any is renamed (the renames run as the stack unwinds).
        for name, text in files.items():
            tmp = stack.enter_context(atomic_path(out_dir / name))
            tmp.write_text(text, encoding="utf-8")
            os.chmod(tmp, FILE_MODE)
    return {name: out_dir / name for name in files}


def make_report(
    data_dir: str | Path,
    out_dir: str | Path,
    program: ProgramConfig | None = None,
    labels: LabelConfig = LabelConfig(),
    config: ReportConfig = ReportConfig(),
    events_config: EventsConfig = EventsConfig(),
    program_source: str | None = None,
    step: Callable[[str], None] = lambda _: None,
) -> dict[str, Path]:
    """Build the report for a data folder and write report.html and report.json; returns their paths.

    `program` is the recommended use from the settings (`program_source` names the file it came from);
    without it the folder's program file, else lapse's defaults. `step` is told each stage (a progress hook).
    """
    step("reading and validating the tables")
    inputs = load_inputs(data_dir, events_config)
    sources = dict(inputs.sources)
    if program is None:
        program = inputs.program
    elif program_source is not None:
        sources["program"] = program_source
    step("computing the reporting elements")
    report = build_report(
        inputs.patients, inputs.events, inputs.data_end, program, labels, config, sources,
        written_at=pd.Timestamp.now(tz="UTC").floor("s"), events_config=events_config,
    )
    step(f"writing {out_dir}")
    text = json.dumps(report, indent=1, allow_nan=False)
    return write_files(out_dir, {JSON_FILE: text + "\n", HTML_FILE: render_html(report)})
