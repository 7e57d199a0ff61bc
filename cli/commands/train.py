"""Validate a data folder, build point-in-time training snapshots (or read the table `lapse features` wrote,
--features), fit a baseline-only and a usage-aware logistic regression and XGBoost on a temporal split,
calibrate on validation, log metrics and artifacts to MLflow (MLFLOW_TRACKING_URI, default SQLite under
.lapse/) and register the XGBoost model with the registry's candidate alias. Exit 2 when the data is not
usable."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Optional

import typer

from cli.options import (AsOfDates, AsOfDays, Calendar, ConfigFile, DataDir, DefinitionOption, EligibleWithin, Engine,
                         EngineOption, EveryDays, Horizon, Scheduler, Workers, label_feature_flags)
from cli.progress import job_steps
from config import ConfigError, TrainingConfig, load_settings

NAME = "train"
_TRAINING = TrainingConfig()


def format_summary(summary) -> list[str]:
    """Readable lines: run and model ids, counts and the headline metrics of each model (aggregates only)."""
    c = summary.counts
    lines = [
        f"run {summary.run_id} (experiment {summary.experiment_id})",
        f"registered {summary.model_name} version {summary.model_version} as candidate ({summary.model_uri})",
        f"patients train/validation/test: {c['train_patients']:,.0f} / {c['validation_patients']:,.0f} / "
        f"{c['test_patients']:,.0f}; snapshots {c['train_rows']:,.0f} / {c['validation_rows']:,.0f} / "
        f"{c['test_rows']:,.0f}",
        f"test metrics ({summary.headline}):",
        f"  {'model':<18} {'AUC':>6} {'PR AUC':>7} {'Brier':>6} {'ECE':>6} {'slope':>6} {'P@10%':>6} {'R@10%':>6}"
        f" {'/ceil':>6}",
    ]
    for name, m in summary.metrics.items():
        ratio = m.get("auc_to_ceiling", float("nan"))
        lines.append(
            f"  {name:<18} {m['auc']:>6.3f} {m['pr_auc']:>7.3f} {m['brier']:>6.3f} {m['ece']:>6.3f} "
            f"{m['calibration_slope']:>6.2f} {m.get('precision_at_10pct', float('nan')):>6.3f} "
            f"{m.get('recall_at_10pct', float('nan')):>6.3f} {ratio:>6.3f}"
        )
    if summary.time_to_dropout:
        lines.append(f"time to dropout: {summary.time_to_dropout}")
    if summary.honesty is not None:
        lines += summary.honesty.lines()
    if summary.quality is not None:
        lines += summary.quality.lines()
    return lines


def _training_data(data: Path, features_file: Path | None, settings, step):
    """TrainingData from the folder: the table built now, or the one `lapse features` wrote with these settings."""
    import pandas as pd

    from features.io import read_data_end
    from features.validate import load_cohort
    from training.job import TrainingData

    from cli.tables import build_training_table, read_training_table

    if features_file is None:
        cohort, data_end, table = build_training_table(data, settings, step)
    else:
        step("reading and validating the tables")
        cohort = load_cohort(data, declared=settings.events)
        data_end = read_data_end(data, cohort.events)
        step(f"reading {features_file}")
        table = read_training_table(features_file, settings, data_end)
    if len(table) == 0:
        raise ConfigError(f"{data}: no eligible, uncensored snapshots to train on")
    truth = None
    truth_file = data / "truth.parquet"
    if truth_file.is_file():
        from simulation import true_dropout_probability

        truth = true_dropout_probability(pd.read_parquet(truth_file), table[["patient_id", "as_of_day"]],
                                         settings.labels)
    return TrainingData(table, cohort.patients, truth, data_end, settings.features, str(data))


def command(
    data: DataDir,
    features_file: Annotated[Optional[Path], typer.Option(
        "--features", metavar="FILE", help="train on this table written by `lapse features` (a file, or the folder it "
        "writes with --engine dask; refused when built with other label or feature settings); default: build it "
        "from --data")] = None,
    seed: Annotated[Optional[int], typer.Option(
        "--seed", help=f"random seed, [training] seed (default: {_TRAINING.seed})")] = None,
    as_of_days: AsOfDays = None,
    horizon: Horizon = None,
    definition: DefinitionOption = None,
    calendar: Calendar = None,
    as_of_dates: AsOfDates = None,
    every_days: EveryDays = None,
    eligible_within: EligibleWithin = None,
    threads: Annotated[Optional[int], typer.Option(
        "--threads", metavar="N", min=1,
        help=f"threads for XGBoost training, [training.xgboost] nthread (default: {_TRAINING.xgboost.nthread})")] = None,
    config: ConfigFile = None,
    engine: EngineOption = Engine.local,
    scheduler: Scheduler = None,
    workers: Workers = None,
) -> int:
    """Train and log; print the run id, model version and headline metrics (exit 0), or the problem (exit 2)."""
    # Idle OpenMP threads otherwise spin and starve other work on a busy machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    flags = label_feature_flags(as_of_days, horizon, definition, calendar, as_of_dates, every_days,
                                eligible_within)
    if seed is not None:
        flags["--seed"] = (("training", "seed"), seed)
    if threads is not None:
        flags["--threads"] = (("training", "xgboost", "nthread"), threads)
    settings = load_settings(data, config, flags)
    if engine is Engine.dask:
        if features_file is not None:
            raise ConfigError("--features trains in this process: use it without --engine dask")
        from engines.commands import train_on_dask

        args = SimpleNamespace(data=data, scheduler=scheduler, workers=workers or settings.scale_out.workers)
        summary = train_on_dask(args, settings)
    else:
        from training.job import log_training_run

        with job_steps("train", ["read", "build", "fit"]) as step:
            training_data = _training_data(data, features_file, settings, step)
            step("fitting, calibrating and logging to MLflow")
            summary = log_training_run(training_data, settings.training, settings.labels)
    print("\n".join(format_summary(summary)))
    return 0
