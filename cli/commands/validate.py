"""Check patients and events (Parquet or CSV) and the data folder's settings against the lapse data contract.
Exit 0 with a summary when the data is usable, 2 with every problem found when not."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from cli.options import ConfigFile, DataDir
from cli.progress import job_steps
from config import ConfigError, LapseError

NAME = "validate"


class DataProblems(LapseError):
    """The data folder does not meet the contract; the message is the report of every problem."""


def summarise(patients, events, extras: dict[str, list[str]]) -> list[str]:
    """Counts for a valid cohort: patients, events per type, date span, extra columns carried."""
    import pandas as pd

    from features.contract import EventType

    day = pd.Timedelta(days=1)
    lines = [f"patients: {len(patients):,}", f"events:   {len(events):,}"]
    counts = events["event_type"].value_counts()
    own = sorted(str(t) for t in counts.index if str(t) not in set(EventType))  # the program's declared types
    for t in [*(t.value for t in EventType), *own]:
        lines.append(f"  {t:<20} {int(counts.get(t, 0)):>12,}")
    if len(events):
        first, last = events["timestamp"].min(), events["timestamp"].max()
        days = (last - first) / day
        lines.append(f"events span {days:.1f} days ({first:%Y-%m-%d} to {last:%Y-%m-%d}, UTC)")
    enrolled = patients["enrolled_at"]
    lines.append(f"enrolment spans {(enrolled.max() - enrolled.min()) / day:.1f} days "
                 f"({enrolled.min():%Y-%m-%d} to {enrolled.max():%Y-%m-%d}, UTC)")
    for table, names in extras.items():
        if names:
            lines.append(f"extra columns carried in {table}: {', '.join(names)}")
    return lines


def command(
    data: DataDir,
    now: Annotated[Optional[str], typer.Option(
        "--now", metavar="ISO", help="the current time for the 'no events in the future' rule, ISO 8601 with a "
        "time zone (default: the clock, UTC)")] = None,
    config: ConfigFile = None,
) -> int:
    """Validate the folder; print the summary (exit 0) or the report of every problem (exit 2)."""
    from config import DEFAULT_PATHS, EventsConfig, load_settings, settings_file
    from features.contract import EVENT_COLUMNS, PATIENT_COLUMNS
    from features.program_file import check_program_file
    from features.validate import ContractError, Problem, as_utc, format_report, load_cohort

    try:
        moment = as_utc(now)
    except ValueError:
        raise ConfigError("--now must be an ISO 8601 time with a time zone, e.g. 2025-06-01T00:00:00Z") from None
    problems: list[Problem] = []
    messages: list[str] = []
    cohort = None
    with job_steps("validate", ["settings", "tables"]) as step:
        step("reading the settings")
        program = data / DEFAULT_PATHS.legacy_program_file
        if program.is_file():
            problems += check_program_file(program)
        declared = EventsConfig()
        try:
            source = settings_file(data, config)
            if not problems:
                declared = load_settings(data, config).events
        except ConfigError as exc:
            source = None
            messages.append(str(exc))
        step("checking the tables against the data contract")
        try:
            cohort = load_cohort(data, now=moment, declared=declared)
        except ContractError as exc:
            problems += exc.problems
    if problems or messages:
        raise DataProblems("\n".join(messages + ([format_report(problems)] if problems else [])))
    extras = {
        "patients": [c for c in cohort.patients.columns if c not in {c.name for c in PATIENT_COLUMNS}],
        "events": [c for c in cohort.events.columns if c not in {c.name for c in EVENT_COLUMNS}],
    }
    print(f"{data}: the data meets the lapse data contract.")
    if source is not None:
        print(f"settings read from {source}")
    if program.is_file():
        print(f"program settings read from {program} (deprecated: use the [program] table of "
              f"{DEFAULT_PATHS.config_file})")
    print("\n".join(summarise(cohort.patients, cohort.events, extras)))
    return 0
