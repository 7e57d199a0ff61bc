"""Score every patient who is active at the as-of time (enrolled, engaged within the label definition's
window and not discontinued) with the registered model behind an alias, using the service's scoring
functions, and write patient_id, as_of, risk, tier, trigger, priority, model and reasons (JSON) to a Parquet
file (a Parquet folder with --engine dask), atomically. Exit 2 when the data or the model is not usable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import (AsOfDates, ConfigFile, DataDir, EligibleWithin, Engine, EngineOption, EveryDays, Scheduler,
                         Workers, parse_dates)
from cli.progress import job_steps
from config import ConfigError, RegistryConfig, ServingConfig, load_settings

NAME = "score-batch"
_REGISTRY = RegistryConfig()


def _as_of(text: str | None, data_end):
    from features.labels import as_utc_instant

    return as_utc_instant(data_end if text is None else text)


def command(
    data: DataDir,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="Parquet file to write (.parquet)")],
    alias: Annotated[Optional[str], typer.Option(
        "--alias", help=f"registry alias of the model (default: [registry] champion_alias, "
        f"{_REGISTRY.champion_alias})")] = None,
    as_of: Annotated[Optional[str], typer.Option(
        "--as-of", metavar="ISO", help="prediction time, ISO 8601 (default: the data's data_end)")] = None,
    as_of_dates: AsOfDates = None,
    every_days: EveryDays = None,
    eligible_within: EligibleWithin = None,
    top_reasons: Annotated[Optional[int], typer.Option(
        "--top-reasons", metavar="N", help="reasons kept per patient, [serving] top_reasons "
        f"(default {ServingConfig().top_reasons})")] = None,
    config: ConfigFile = None,
    engine: EngineOption = Engine.local,
    scheduler: Scheduler = None,
    workers: Workers = None,
) -> int:
    """Score and write atomically; print counts by tier only (exit 0), or the problem (exit 2)."""
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from engines.scoring import load_served_model
    from training.tracking import tracking_uri

    if out.suffix != ".parquet":
        raise ConfigError(f"--out must name a .parquet file (got {out.name})")
    flags = {}
    if top_reasons is not None:
        flags["--top-reasons"] = (("serving", "top_reasons"), top_reasons)
    if workers is not None:
        flags["--workers"] = (("scale_out", "workers"), workers)
    if every_days is not None:
        flags["--every-days"] = (("features", "calendar_every_days"), every_days)
    if eligible_within is not None:
        flags["--eligible-within"] = (("labels", "engaged_within_days"), eligible_within)
    dates = parse_dates(as_of_dates)
    if dates and as_of is not None:
        raise ConfigError("give --as-of or --as-of-dates, not both")
    settings = load_settings(data, config, flags)
    with job_steps("score-batch", ["model", "read", "score"]) as step:
        step("loading the model")
        model = load_served_model(tracking_uri(), alias or settings.registry.champion_alias,
                                  settings.registry.registered_model)
        if engine is Engine.dask:
            tiers = _run_dask(data, out, as_of, scheduler, model, settings, dates, eligible_within)
        else:
            tiers = _run_local(data, out, as_of, model, settings, step, dates, eligible_within)
    total = int(sum(tiers.values()))
    print(f"wrote {out}: {total:,} active patients scored with {model.name} version {model.version}")
    for name, _ in model.tiers:
        print(f"  {name:<10} {int(tiers.get(name, 0)):>9,}")
    return 0


def _moments(dates, every_days: int) -> list:
    """The as-of times (UTC): every `every_days` from the first date to the last (one date: that date)."""
    import pandas as pd

    first, last = pd.Timestamp(dates[0]), pd.Timestamp(dates[1])
    return [_as_of(str(m), None) for m in pd.date_range(first, last, freq=pd.Timedelta(days=every_days))]


def _run_local(data: Path, out: Path, as_of: str | None, model, settings, step, dates=None,
               eligible_within: int | None = None) -> dict:
    import pandas as pd

    from engines.scoring import score_cohort
    from features.io import read_data_end, write_table
    from features.validate import load_cohort

    step("reading and validating the tables")
    cohort = load_cohort(data, declared=settings.events)
    moments = (_moments(dates, settings.features.calendar_every_days) if dates
               else [_as_of(as_of, read_data_end(data, cohort.events))])
    step(f"scoring the active patients at {len(moments)} as-of time{'s' * (len(moments) > 1)}")
    scores = pd.concat([score_cohort(cohort.patients, cohort.events, m, model, settings.serving.top_reasons,
                                     eligible_within) for m in moments],
                       ignore_index=True)
    write_table(scores, out.parent, out.stem)
    return scores["tier"].value_counts().to_dict()


def _run_dask(data: Path, out: Path, as_of: str | None, scheduler: str | None, model, settings, dates=None,
              eligible_within: int | None = None) -> dict:
    from engines.cluster import dask_client
    from engines.output import write_dataset
    from engines.partitions import data_end_of, read_partitioned
    from engines.scoring import distributed_scores

    config = settings.scale_out
    with dask_client(scheduler, config.workers, config):
        cohort = read_partitioned(data, config=config, declared=settings.events)
        moments = (_moments(dates, settings.features.calendar_every_days) if dates
                   else [_as_of(as_of, data_end_of(data, cohort))])
        write_dataset(distributed_scores(cohort, moments, model, settings.serving.top_reasons, eligible_within), out)
        import dask.dataframe as dd  # optional extra (lapse[dask]): imported only on this path

        return dd.read_parquet(str(out), columns=["tier"])["tier"].value_counts().compute().to_dict()
