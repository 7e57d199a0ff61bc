"""Options shared by several sub-commands (data folder, settings file, label and feature settings, engine)."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

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


def label_feature_flags(as_of_days: str | None, horizon: int | None, definition: Definition | None,
                        calendar: bool | None) -> dict:
    """The label and feature settings given on the command line, for `config.load_settings`."""
    flags = {
        "--as-of-days": (("features", "as_of_days"), parse_days(as_of_days)),
        "--horizon": (("labels", "horizon_days"), horizon),
        "--definition": (("labels", "definition"), definition.value if definition else None),
        "--calendar": (("features", "calendar"), calendar),
    }
    return {flag: given for flag, given in flags.items() if given[1] is not None}
