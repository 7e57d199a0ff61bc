"""Write report.html (self-contained) and report.json (every number) with the engagement reporting elements,
overall and by subgroup, small groups suppressed. Exit 0 when written, 2 when the data cannot be used (an
existing report is then left as it was)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import ConfigFile, DataDir
from cli.progress import job_steps
from config import LapseError, ReportConfig, load_settings
from config.loader import read_toml, settings_file
from features.validate import ContractError
from reporting.files import HTML_FILE, ReportInputError, make_report
from reporting.pdf import write_pdf_or_reason

NAME = "report"
_DEFAULTS = ReportConfig()


class ReportRefused(LapseError):
    """The data folder cannot be reported on; nothing was written."""


def command(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", metavar="DIR", help="folder to write the report into")],
    min_cell: Annotated[Optional[int], typer.Option(
        "--min-cell", metavar="N", help="smallest group or count shown; smaller ones are suppressed, [report] "
        f"min_cell (default {_DEFAULTS.min_cell})")] = None,
    weeks: Annotated[Optional[int], typer.Option(
        "--weeks", metavar="K", help=f"weeks of duration of use to report, [report] weeks (default {_DEFAULTS.weeks})")]
    = None,
    pdf: Annotated[bool, typer.Option(
        "--pdf", help="also print report.pdf with Debian's chromium (skipped, with the reason, when it is missing)")]
    = False,
    config: ConfigFile = None,
) -> int:
    """Build and write the report; print the paths (exit 0) or why the data cannot be used (exit 2)."""

    flags = {flag: (("report", key), value) for flag, key, value in
             (("--min-cell", "min_cell", min_cell), ("--weeks", "weeks", weeks)) if value is not None}
    settings = load_settings(data, config, flags)
    source = settings_file(data, config)
    program_source = source.name if source is not None and "program" in read_toml(source) else None
    with job_steps("report", ["read", "build", "write"]) as step:
        try:
            paths = make_report(data, out, settings.program, settings.labels, settings.report, settings.events,
                                program_source, step)
        except (ContractError, ReportInputError) as exc:
            raise ReportRefused(f"no report written.\n{exc}") from None
    for path in paths.values():
        print(path)
    if pdf:
        print(write_pdf_or_reason(paths[HTML_FILE]))
    return 0
