"""`lapse train`: fit, calibrate and evaluate the dropout models on a data folder, tracked in MLflow."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cli.arguments import as_of_days, positive_int

EXIT_OK = 0
EXIT_BAD_INPUT = 2


def register(subparsers) -> None:
    """Add the `train` sub-command."""
    from config import FeatureConfig, LabelConfig, TrainingConfig

    features, labels, training = FeatureConfig(), LabelConfig(), TrainingConfig()
    parser = subparsers.add_parser(
        "train",
        help="train, calibrate and evaluate the dropout models; register the candidate in MLflow",
        description="Validate a data folder, build point-in-time training snapshots, fit a baseline-only and a "
        "usage-aware logistic regression and XGBoost on a temporal split, calibrate on validation, log "
        "metrics and artifacts to MLflow (MLFLOW_TRACKING_URI, default SQLite under .lapse/) and register "
        f"the XGBoost model as '{training.registered_model}' with alias '{training.candidate_alias}'. "
        "Exit 2 when the data is not usable.",
    )
    parser.add_argument("--data", type=Path, required=True, metavar="DIR",
                        help="folder holding patients and events (meta.json gives data_end; truth.parquet, "
                        "if present, gives the simulator's ceiling)")
    parser.add_argument("--seed", type=int, default=training.seed, help=f"random seed (default: {training.seed})")
    parser.add_argument("--as-of-days", type=as_of_days, default=features.as_of_days, metavar="D,D,...",
                        help=f"snapshot days after enrolment (default: {','.join(map(str, features.as_of_days))})")
    parser.add_argument("--horizon", type=positive_int, default=labels.horizon_days, metavar="DAYS",
                        help=f"dropout horizon in days after the as-of time (default: {labels.horizon_days})")
    parser.add_argument("--threads", type=positive_int, default=training.xgboost.nthread, metavar="N",
                        help=f"threads for XGBoost training (default: {training.xgboost.nthread})")
    from engines.options import add_engine_options

    add_engine_options(parser)
    parser.set_defaults(func=run)


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
    return lines


def run(args: argparse.Namespace) -> int:
    """Train and log; print the run id, model version and headline metrics (exit 0), or the problem (exit 2)."""
    # Idle OpenMP threads otherwise spin and starve other work on a busy machine.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from dataclasses import replace

    from config import FeatureConfig, LabelConfig, TrainingConfig
    from features.validate import ContractError
    from training.job import run_training

    training = TrainingConfig()
    config = replace(training, seed=args.seed, xgboost=replace(training.xgboost, nthread=args.threads))
    features = replace(FeatureConfig(), as_of_days=args.as_of_days)
    labels = replace(LabelConfig(), horizon_days=args.horizon)
    try:
        if getattr(args, "engine", "local") == "dask":
            from engines.commands import train_on_dask

            summary = train_on_dask(args, config, features, labels)
        else:
            summary = run_training(args.data, config, features, labels)
    except ContractError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_BAD_INPUT
    except (ValueError, OSError) as exc:
        print(f"lapse train: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print("\n".join(format_summary(summary)))
    return EXIT_OK
