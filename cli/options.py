"""Options shared by several sub-commands (data folder, settings file, label and feature settings, engine)."""

from __future__ import annotations

from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import pandas as pd
import typer

from config import FeatureConfig, LabelConfig, ScaleOutConfig

_FEATURES, _LABELS = FeatureConfig(), LabelConfig()


class Engine(str, Enum):
    local = "local"
    dask = "dask"


class Definition(str, Enum):
    inactivity = "inactivity"
    discontinuation = "discontinuation"
    either = "either"


DataDir = Annotated[Path, typer.Option("--data", metavar="DIR", help="data folder holding patients.parquet|csv "
                                       "and events.parquet|csv (meta.json gives data_end; lapse.toml the settings)")]
ConfigFile = Annotated[Optional[Path], typer.Option(
    "--config", metavar="FILE", help="settings file (default: lapse.toml in the data folder, if there is one); "
    "see docs/configuration.md")]
AsOfDays = Annotated[Optional[str], typer.Option(
    "--as-of-days", metavar="D,D,...",
    help=f"snapshot days after enrolment, [features] as_of_days (default: {','.join(map(str, _FEATURES.as_of_days))})")]
Horizon = Annotated[Optional[int], typer.Option(
    "--horizon", metavar="DAYS", min=1,
    help=f"dropout horizon in days after the as-of time, [labels] horizon_days (default: {_LABELS.horizon_days})")]
DefinitionOption = Annotated[Optional[Definition], typer.Option(
    "--definition", help=f"what counts as dropout in the horizon, [labels] definition (default: {_LABELS.definition})")]
Calendar = Annotated[Optional[bool], typer.Option(
    "--calendar/--no-calendar", show_default=False,
    help=f"also take snapshots every {_FEATURES.calendar_every_days} calendar days, [features] calendar "
    "(default: off)")]
AsOfDates = Annotated[Optional[str], typer.Option(
    "--as-of-dates", metavar="DATE[..DATE]",
    help="calendar as-of dates instead of days since enrolment: one date (YYYY-MM-DD, midnight UTC, or ISO 8601 "
    "with a zone), or every --every-days from the first date to the second; [features] calendar_start and "
    "calendar_end (add --as-of-days to keep days since enrolment too)")]
EveryDays = Annotated[Optional[int], typer.Option(
    "--every-days", metavar="N", min=1,
    help=f"days between calendar as-of dates, [features] calendar_every_days (default: {_FEATURES.calendar_every_days})")]
EligibleWithin = Annotated[Optional[int], typer.Option(
    "--eligible-within", metavar="DAYS", min=1,
    help="a patient is active (eligible) with own engagement within this many days before the as-of time, [labels] "
    f"engaged_within_days (default: {_LABELS.engaged_within_days})")]
EngineOption = Annotated[Engine, typer.Option(
    "--engine", help="local: this process, tables in memory; dask: patient partitions on a Dask cluster "
    "(needs the lapse[dask] extra and Parquet tables)")]
Scheduler = Annotated[Optional[str], typer.Option(
    "--scheduler", metavar="ADDRESS", help="Dask scheduler to connect to (e.g. tcp://scheduler:8786); without it a "
    "local cluster is started and closed")]
Workers = Annotated[Optional[int], typer.Option(
    "--workers", metavar="N", min=1,
    help=f"worker processes of the local Dask cluster, [scale_out] workers (default: {ScaleOutConfig().workers})")]


def parse_days(text: str | None) -> tuple[int, ...] | None:
    """Comma-separated whole days after enrolment (validated as [features] as_of_days by the settings)."""
    if text is None:
        return None
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter("as-of days must be whole numbers separated by commas, e.g. 3,7,14",
                                 param_hint="--as-of-days") from None


def _instant(text: str) -> datetime:
    stamp = pd.Timestamp(text.strip())
    if stamp.tz is None:
        if stamp != stamp.normalize():
            raise ValueError(text)
        stamp = stamp.tz_localize("UTC")  # a date alone is its midnight, UTC
    return stamp.to_pydatetime()


def parse_dates(text: str | None) -> tuple[datetime, datetime] | None:
    """`DATE` or `DATE..DATE` as (first, last) time-zone-aware instants; a date alone is midnight UTC."""
    if text is None:
        return None
    parts = text.split("..")
    try:
        if len(parts) > 2 or not all(p.strip() for p in parts):
            raise ValueError(text)
        first, last = _instant(parts[0]), _instant(parts[-1])
    except ValueError:
        raise typer.BadParameter("as-of dates are one date (2026-03-01) or two joined by .. "
                                 "(2026-01-01..2026-03-01); a time needs a zone (2026-03-01T09:00:00Z)",
                                 param_hint="--as-of-dates") from None
    if last < first:
        raise typer.BadParameter("the second date is before the first", param_hint="--as-of-dates")
    return first, last


def label_feature_flags(as_of_days: str | None, horizon: int | None, definition: Definition | None,
                        calendar: bool | None, as_of_dates: str | None = None, every_days: int | None = None,
                        eligible_within: int | None = None) -> dict:
    """The label and feature settings given on the command line, for `config.load_settings`.

    `--as-of-dates` turns calendar snapshots on between its dates and, unless --as-of-days is given too,
    takes no snapshots at days since enrolment.
    """
    dates = parse_dates(as_of_dates)
    days = parse_days(as_of_days)
    flags = {
        "--as-of-days": (("features", "as_of_days"), () if dates and days is None else days),
        "--horizon": (("labels", "horizon_days"), horizon),
        "--definition": (("labels", "definition"), definition.value if definition else None),
        "--calendar": (("features", "calendar"), True if dates else calendar),
        "--as-of-dates": (("features", "calendar_start"), dates[0] if dates else None),
        "--as-of-dates ": (("features", "calendar_end"), dates[1] if dates else None),
        "--every-days": (("features", "calendar_every_days"), every_days),
        "--eligible-within": (("labels", "engaged_within_days"), eligible_within),
    }
    return {flag: given for flag, given in flags.items() if given[1] is not None}
