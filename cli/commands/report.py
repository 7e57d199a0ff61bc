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
    import json

    from config.loader import read_toml, settings_file
    from features.validate import ContractError
    from reporting.build import build_report
    from reporting.files import HTML_FILE, JSON_FILE, ReportInputError, load_inputs, write_files
    from reporting.html import render_html
    from reporting.pdf import write_pdf_or_reason

    flags = {flag: (("report", key), value) for flag, key, value in
             (("--min-cell", "min_cell", min_cell), ("--weeks", "weeks", weeks)) if value is not None}
    settings = load_settings(data, config, flags)
    with job_steps("report", ["read", "build", "write"]) as step:
        step("reading and validating the tables")
        try:
            inputs = load_inputs(data)
        except (ContractError, ReportInputError) as exc:
            raise ReportRefused(f"no report written.\n{exc}") from None
        sources = dict(inputs.sources)
        source = settings_file(data, config)
        if source is not None and "program" in read_toml(source):
            sources["program"] = source.name
        step("computing the reporting elements")
        report = build_report(inputs.patients, inputs.events, inputs.data_end, settings.program, settings.labels,
                              settings.report, sources)
        step(f"writing {out}")
        paths = write_files(out, {JSON_FILE: json.dumps(report, indent=1, allow_nan=False) + "\n",
                                  HTML_FILE: render_html(report)})
    for path in paths.values():
        print(path)
    if pdf:
        print(write_pdf_or_reason(paths[HTML_FILE]))
    return 0
