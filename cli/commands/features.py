"""Validate a data folder, take snapshots at the given days after each patient's enrolment, and write the
features and dropout label of every eligible, uncensored snapshot to a Parquet file, with the settings it was
built with (`lapse train --features FILE` trains on it). Exit 2 with the contract's report when the data is
not usable."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer

from cli.options import (AsOfDates, AsOfDays, Calendar, ConfigFile, DataDir, DefinitionOption, EligibleWithin, Engine,
                         EngineOption, EveryDays, Horizon, Scheduler, Workers, label_feature_flags)
from cli.progress import job_steps
from config import ConfigError, load_settings

NAME = "features"


def command(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Parquet file to write (.parquet)")],
    as_of_days: AsOfDays = None,
    horizon: Horizon = None,
    definition: DefinitionOption = None,
    calendar: Calendar = None,
    as_of_dates: AsOfDates = None,
    every_days: EveryDays = None,
    eligible_within: EligibleWithin = None,
    config: ConfigFile = None,
    engine: EngineOption = Engine.local,
    scheduler: Scheduler = None,
    workers: Workers = None,
) -> int:
    """Build the training table and write it atomically; print counts only (exit 0), or the problem (exit 2)."""
    from features.io import write_table

    from cli.tables import build_training_table

    if out.suffix != ".parquet":
        raise ConfigError(f"--out must name a .parquet file (got {out.name})")
    settings = load_settings(data, config, label_feature_flags(as_of_days, horizon, definition, calendar, as_of_dates, every_days,
                                eligible_within))
    if engine is Engine.dask:
        from engines.commands import run_features

        return run_features(SimpleNamespace(data=data, out=out, scheduler=scheduler,
                                            workers=workers or settings.scale_out.workers), settings)
    with job_steps("features", ["read", "build", "write"]) as step:
        _, _, table = build_training_table(data, settings, step)
        step(f"writing {out}")
        write_table(table, out.parent, out.stem)
    n_drop = int(table["dropout"].sum())
    print(f"wrote {out}: {len(table):,} snapshots of {table['patient_id'].nunique():,} patients "
          f"(eligible and uncensored), {n_drop:,} dropouts, {len(table) - n_drop:,} retained")
    if not settings.features.calendar:  # calendar snapshots fall on every day since enrolment: too many lines
        for day, group in table.groupby("as_of_day", sort=True):
            print(f"  day {int(day):>3}: {len(group):>9,} snapshots, {int(group['dropout'].sum()):>9,} dropouts")
    return 0
