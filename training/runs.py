"""What the MLflow runs of one training hold: a parent run, and one nested run per candidate model.

Metric names are the same in every nested run, so MLflow's run comparison lines the models up:
the headline slice's metrics under their own names (`auc`, `ece`, ...), the pooled test rows
under `pooled.<metric>`, and each as-of day as a step of `by_as_of_day.<metric>` (step = the
as-of day), so one chart shows a metric across the program's days. A metric that is not defined
on its rows (an AUC on one class, a subgroup too small) is not logged; a tag names it and says why.
"""

from __future__ import annotations

import warnings

import mlflow
import pandas as pd
from mlflow.types import ColSpec, Schema
from mlflow.types.utils import _infer_pandas_column

from training.evaluation import POOLED
from training.fit import CEILING, GROUP_PREFIX, LABEL, TrainingOutcome
from training.survival import BASELINE as KM, MODEL as AFT, SurvivalOutcome
from training.tracking import log_finite_metrics, project_run_id, release_foreign_project_run, tag_skipped

MODEL_DESCRIPTIONS = {
    "baseline_logistic": "Logistic regression on the patient's baseline factors and days since enrolment: "
                         "the floor any usage-aware model must beat.",
    "usage_logistic": "Logistic regression on every feature (baseline and usage): the linear reference.",
    "xgboost": "Gradient-boosted trees on every feature, Platt-calibrated on validation: the model lapse "
               "registers and serves.",
    CEILING: "Not a model: the simulator's true dropout probabilities, the best AUC reachable on this data.",
}


def start_parent_run(client, experiment_id: str, run_name: str, description: str):
    """The parent run: the one `mlflow run` made when it is in lapse's experiment, else a new run.

    A project run in another experiment (mlflow run without --experiment-name) is left holding its
    parameters and a tag that points at lapse's run, so training always lands in lapse's experiment.
    """
    project = project_run_id()
    if project and release_foreign_project_run(client, experiment_id) is None:
        parent = mlflow.start_run(description=description)  # resumes the project's run (MLFLOW_RUN_ID)
        return parent, project
    return mlflow.start_run(experiment_id=experiment_id, run_name=run_name, description=description), project


def _nested(name: str, description: str):
    """A run nested under the active (parent) run, in the parent's experiment."""
    parent = mlflow.active_run()
    return mlflow.start_run(run_name=name, nested=True, experiment_id=parent.info.experiment_id,
                            description=description)


def slice_metrics(slices: dict[str, dict[str, float]], headline: str, prefix: str = "") -> list[str]:
    """Log one model's metrics by slice to the active run; return the names skipped as undefined."""
    skipped = log_finite_metrics({f"{prefix}{k}": v for k, v in slices[headline].items()})
    if POOLED in slices:
        skipped += log_finite_metrics({f"{prefix}pooled.{k}": v for k, v in slices[POOLED].items()})
    for name, values in slices.items():
        if name.startswith("day"):
            skipped += [f"{s}@{name}" for s in log_finite_metrics(
                {f"{prefix}by_as_of_day.{k}": v for k, v in values.items()}, step=int(name[3:]))]
    return skipped


def log_model_run(outcome: TrainingOutcome, name: str, chosen: str) -> str:
    """A nested run for candidate `name`: its metrics by slice, TPR gaps, subgroup table; returns its id."""
    with _nested(name, MODEL_DESCRIPTIONS.get(name, name)) as run:
        mlflow.set_tags({"lapse.kind": "candidate", "lapse.model": name, "lapse.chosen": str(name == chosen).lower(),
                         "lapse.headline_slice": outcome.headline})
        fitted = outcome.models.get(name)
        if fitted is not None:
            mlflow.log_params({"n_features": len(fitted.features), "calibration": "platt"})
        skipped = slice_metrics(outcome.metrics[name], outcome.headline)
        gaps = outcome.gaps.get(name, {}).get(outcome.headline, {})
        skipped += log_finite_metrics({f"tpr_gap.{a}": g for a, g in gaps.items()})
        if fitted is not None:
            skipped += log_finite_metrics({"operating_threshold": fitted.operating_threshold})
        table = outcome.subgroups[outcome.subgroups["model"] == name].drop(columns="model")
        with warnings.catch_warnings():
            # MLflow's own pandas calls warn under pandas 3 (select_dtypes, integer schema hints).
            warnings.simplefilter("ignore")
            mlflow.log_table(table.astype({"group": object, "attribute": object, "slice": object}), "subgroups.json")
        tag_skipped(skipped)
        return run.info.run_id


def log_survival_run(survival: SurvivalOutcome, horizons: tuple[int, ...], booster_path: str) -> str:
    """A nested run for the time-to-dropout model and its Kaplan-Meier baseline; tagged whether to use it."""
    description = ("Time to dropout: XGBoost survival:aft (log-normal) on the risk model's features, judged on "
                   "the test rows against the simulator's quit days, beside a Kaplan-Meier baseline per as-of "
                   f"day and group. {'Use it' if survival.use else 'Do not use it'}: {survival.reason}.")
    with _nested("time_to_dropout", description) as run:
        mlflow.set_tags({"lapse.kind": "survival", "lapse.model": "time_to_dropout",
                         "lapse.use": "yes" if survival.use else "no", "lapse.use_reason": survival.reason})
        mlflow.log_params({"objective": "survival:aft", "aft_loss_distribution": "normal",
                           "aft_sigma": survival.sigma, "horizons_days": ",".join(map(str, horizons)),
                           "test_rows": survival.test_rows})
        skipped = log_finite_metrics(survival.metrics[AFT])
        skipped += log_finite_metrics({f"{KM}.{k}": v for k, v in survival.metrics[KM].items()})
        for model, prefix in ((AFT, ""), (KM, f"{KM}.")):
            for day, values in survival.by_day[model].items():
                skipped += log_finite_metrics({f"{prefix}by_as_of_day.{k}": v for k, v in values.items()}, step=day)
        mlflow.log_artifact(booster_path, "time_to_dropout")
        mlflow.log_dict({"aft_sigma": survival.sigma, "horizons_days": list(horizons),
                         "calibration": [{"horizon_days": h, "slope": c.slope, "intercept": c.intercept}
                                         for h, c in zip(horizons, survival.calibrations)]},
                        "time_to_dropout/calibration.json")
        tag_skipped(skipped)
        return run.info.run_id


def log_datasets(table: pd.DataFrame, holdout: pd.DataFrame, source: str, digest: str) -> None:
    """The training table and the test rows as MLflow dataset inputs (schema, size, digest; never the rows)."""
    columns = [c for c in holdout.columns if not c.startswith(GROUP_PREFIX)]
    with warnings.catch_warnings():
        # MLflow hints that integer columns cannot hold NaN, and that a folder path could be either of two
        # local sources; neither matters for a record of schema and digest.
        warnings.simplefilter("ignore", UserWarning)
        frame = table.drop(columns=["patient_id"], errors="ignore")
        training = mlflow.data.from_pandas(frame, source=source, name="training_table", digest=digest,
                                           targets=LABEL)
        rows = holdout[columns]
        test = mlflow.data.from_pandas(rows, source=source, name="test_rows", digest=digest_of(rows), targets=LABEL)
        # The dataset's schema is worked out here (MLflow would infer it when logging, value by value).
        training.schema, test.schema = dataset_schema(frame), dataset_schema(rows)
        mlflow.log_input(training, context="training")
        mlflow.log_input(test, context="test")


def parent_metrics(outcome: TrainingOutcome, chosen: str) -> list[str]:
    """The parent run's own metrics: row counts, the chosen model's, and the ceiling's (prefixed)."""
    skipped = log_finite_metrics({f"count.{k}": v for k, v in outcome.counts.items()})
    skipped += slice_metrics(outcome.metrics[chosen], outcome.headline)
    gaps = outcome.gaps[chosen][outcome.headline]
    skipped += log_finite_metrics({f"tpr_gap.{a}": g for a, g in gaps.items()})
    if CEILING in outcome.metrics:
        skipped += slice_metrics(outcome.metrics[CEILING], outcome.headline, prefix=f"{CEILING}.")
    return skipped


def dataset_schema(frame: pd.DataFrame) -> Schema | None:
    """The schema MLflow infers for a frame (a dataset input's `schema`): each column's type by MLflow's own
    inference, and `required` when no value is missing, found by pandas' vectorised `isna`. MLflow's inference
    (`mlflow.types.utils._infer_schema`) tests every value for a missing one in a Python loop, which takes seconds
    for a training table, twice per run. tests/training checks that both give the same schema."""
    try:
        return Schema([ColSpec(type=_infer_pandas_column(frame[name]), name=name,
                               required=not bool(frame[name].isna().any())) for name in frame.columns])
    except Exception:  # noqa: BLE001 - as MLflow's own: no schema when a column's type cannot be inferred
        return None


def digest_of(table: pd.DataFrame) -> str:
    """A short content hash of a frame (the training table's fingerprint)."""
    return f"{int(pd.util.hash_pandas_object(table, index=False).sum()) & 0xFFFFFFFFFFFF:012x}"
