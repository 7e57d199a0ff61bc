"""Where runs and models are tracked: the MLflow store, the experiment and the model registry."""

from __future__ import annotations

import math
import os
from pathlib import Path
from urllib.parse import unquote, urlparse

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from config import DEFAULT_PATHS, Paths
from config.errors import LapseError


def tracking_uri(paths: Paths = DEFAULT_PATHS) -> str:
    """The tracking store: MLFLOW_TRACKING_URI if set, else SQLite under the work folder."""
    return paths.tracking_uri


def artifact_root_for(uri: str, paths: Paths = DEFAULT_PATHS) -> str | None:
    """Artifact folder for a tracking URI: next to a SQLite file (mlartifacts/), else the server's choice.

    With the default store this is Paths.artifact_root; None leaves it to a tracking server.
    """
    parsed = urlparse(uri)
    if parsed.scheme == "sqlite":
        db = unquote(uri[len("sqlite:///"):])
        if db and db != ":memory:":
            return Path(db).resolve().parent.joinpath("mlartifacts").as_uri()
        return paths.artifact_root.resolve().as_uri()
    if parsed.scheme in ("", "file"):
        return None
    return None


def connect(uri: str | None = None, paths: Paths = DEFAULT_PATHS):
    """Point MLflow at the tracking store (tracking and registry) and return a client for it."""
    uri = uri or tracking_uri(paths)
    if urlparse(uri).scheme == "sqlite":
        db = unquote(uri[len("sqlite:///"):])
        if db and db != ":memory:":
            Path(db).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client, name: str, uri: str, paths: Paths = DEFAULT_PATHS) -> str:
    """Id of experiment `name`, created with an explicit artifact location if it does not exist."""
    found = client.get_experiment_by_name(name)
    if found is not None:
        _check_artifact_location(found, uri)
        if found.lifecycle_stage == "deleted":
            client.restore_experiment(found.experiment_id)
        return found.experiment_id
    return client.create_experiment(name, artifact_location=artifact_root_for(uri, paths))


def _check_artifact_location(experiment, uri: str) -> None:
    """Refuse an experiment of a SQLite store whose artifacts would land outside the store's folder.

    `mlflow run --experiment-name` creates a missing experiment with artifacts in ./mlruns of the
    working folder; logging there would scatter lapse's artifacts into the repository.
    """
    if urlparse(uri).scheme != "sqlite":
        return
    db = unquote(uri[len("sqlite:///"):])
    location = urlparse(experiment.artifact_location)
    if not db or db == ":memory:" or location.scheme not in ("", "file"):
        return
    store_dir = Path(db).resolve().parent
    artifacts = Path(unquote(location.path)).resolve()
    if not artifacts.is_relative_to(store_dir):
        raise LapseError(
            f"experiment '{experiment.name}' keeps its artifacts in {artifacts}, outside the store's folder "
            f"{store_dir}: `mlflow run --experiment-name` made it before lapse did. Remove it for good "
            f"(`mlflow experiments delete --experiment-id {experiment.experiment_id}`, then `mlflow gc "
            f"--experiment-ids {experiment.experiment_id}`) and run `mlflow run` without --experiment-name: "
            "lapse then makes the experiment itself")


def alias_version(client, model_name: str, alias: str):
    """The model version an alias points at, or None when the model or alias does not exist."""
    try:
        return client.get_model_version_by_alias(model_name, alias)
    except MlflowException:
        return None


def finite_metrics(metrics: dict[str, float]) -> tuple[dict[str, float], list[str]]:
    """The finite metrics, and the names of those left out (NaN or infinite: not defined on those rows)."""
    kept, skipped = {}, []
    for name, value in metrics.items():
        if value is not None and math.isfinite(float(value)):
            kept[name] = float(value)
        else:
            skipped.append(name)
    return kept, skipped


def log_finite_metrics(metrics: dict[str, float], step: int | None = None) -> list[str]:
    """Log the finite metrics of the active run (at `step`); return the names skipped as not defined."""
    kept, skipped = finite_metrics(metrics)
    if kept:
        mlflow.log_metrics(kept, step=step)
    return skipped


def tag_skipped(skipped: list[str]) -> None:
    """Say on the active run which metrics were not logged, and why (a tag, since MLflow plots no NaN)."""
    if skipped:
        names = ", ".join(sorted(dict.fromkeys(skipped)))
        mlflow.set_tag("lapse.skipped_metrics",
                       f"not defined on their rows (one class only, or too few rows or positives): {names}"[:5000])


def project_run_id() -> str | None:
    """The run `mlflow run` made for this process (MLFLOW_RUN_ID), if this is an MLflow project run."""
    return os.environ.get("MLFLOW_RUN_ID") or None


# MLflow's store when MLFLOW_TRACKING_URI is not set: a database in the working folder.
MLFLOW_DEFAULT_DB = "mlflow.db"


def is_mlflow_default_store(uri: str) -> bool:
    """Whether `uri` is MLflow's default store (mlflow.db in the working folder), relative or made absolute."""
    if urlparse(uri).scheme != "sqlite":
        return False
    db = unquote(uri[len("sqlite:///"):])
    return bool(db) and db != ":memory:" and Path(db).resolve() == (Path.cwd() / MLFLOW_DEFAULT_DB).resolve()


def refuse_mlflow_default_store(uri: str) -> None:
    """Under `mlflow run` with MLflow's default store, stop before anything is logged to the working folder.

    `mlflow run` passes its store on to the entry point as an absolute MLFLOW_TRACKING_URI, so the
    job cannot tell a chosen store from the default one by the variable alone: it compares paths.
    """
    if project_run_id() is not None and is_mlflow_default_store(uri):
        raise LapseError(
            f"`mlflow run` was started without MLFLOW_TRACKING_URI, so it made mlflow.db in {Path.cwd()}; lapse "
            "logs nothing there. Set MLFLOW_TRACKING_URI=sqlite:///.lapse/mlflow.db (lapse's store) and run again; "
            "the mlflow.db in that folder holds only the failed project run and can be deleted")


def release_foreign_project_run(client, experiment_id: str | None) -> str | None:
    """Under `mlflow run`, keep the project's run only if lapse may log into it; return a released run.

    MLflow resumes MLFLOW_RUN_ID at the next start_run whatever experiment is asked for, so a project run
    made in "Default" (no --experiment-name) would take lapse's run, and its artifacts would go to
    ./mlruns. Such a run is released, and so is one that already holds another lapse job (in the `main`
    entry point every command gets the same run: train keeps it, promote logs its own). The caller then
    logs to its own run in lapse's experiment and links the two.
    """
    project = project_run_id()
    if project is None:
        return None
    run = client.get_run(project)
    if (experiment_id is not None and run.info.experiment_id == experiment_id
            and "lapse.kind" not in run.data.tags):
        return None
    os.environ.pop("MLFLOW_RUN_ID", None)
    return project
