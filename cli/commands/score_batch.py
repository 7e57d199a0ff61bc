"""Score every patient who is active at the as-of time (enrolled, engaged within the label definition's
window and not discontinued) with the registered model behind an alias, using the service's scoring
functions, and write patient_id, as_of, risk, tier, trigger, priority, model and reasons (JSON) to a Parquet
file (a Parquet folder with --engine dask), atomically. Exit 2 when the data or the model is not usable."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from cli.options import ConfigFile, DataDir, Engine, EngineOption, Scheduler, Workers
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
    settings = load_settings(data, config, flags)
    with job_steps("score-batch", ["model", "read", "score"]) as step:
        step("loading the model")
        model = load_served_model(tracking_uri(), alias or settings.registry.champion_alias,
                                  settings.registry.registered_model)
        if engine is Engine.dask:
            tiers = _run_dask(data, out, as_of, scheduler, model, settings)
        else:
            tiers = _run_local(data, out, as_of, model, settings, step)
    total = int(sum(tiers.values()))
    print(f"wrote {out}: {total:,} active patients scored with {model.name} version {model.version}")
    for name, _ in model.tiers:
        print(f"  {name:<10} {int(tiers.get(name, 0)):>9,}")
    return 0


def _run_local(data: Path, out: Path, as_of: str | None, model, settings, step) -> dict:
    from engines.scoring import score_cohort
    from features.io import read_data_end, write_table
    from features.validate import load_cohort

    step("reading and validating the tables")
    cohort = load_cohort(data, declared=settings.events)
    moment = _as_of(as_of, read_data_end(data, cohort.events))
    step("scoring the active patients")
    scores = score_cohort(cohort.patients, cohort.events, moment, model, settings.serving.top_reasons)
    write_table(scores, out.parent, out.stem)
    return scores["tier"].value_counts().to_dict()


def _run_dask(data: Path, out: Path, as_of: str | None, scheduler: str | None, model, settings) -> dict:
    from engines.cluster import dask_client
    from engines.output import write_dataset
    from engines.partitions import data_end_of, read_partitioned
    from engines.scoring import distributed_scores

    config = settings.scale_out
    with dask_client(scheduler, config.workers, config):
        cohort = read_partitioned(data, config=config)
        moment = _as_of(as_of, data_end_of(data, cohort.events))
        write_dataset(distributed_scores(cohort, moment, model, settings.serving.top_reasons), out)
        import dask.dataframe as dd  # optional extra (lapse[dask]): imported only on this path

        return dd.read_parquet(str(out), columns=["tier"])["tier"].value_counts().compute().to_dict()
