"""Shared fixtures: one small simulated cohort written as a data folder, and one champion model trained on
it once per session (tests that register, promote or log copy its tracking store: `private_store`)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from config import TrainingConfig, XGBoostParams
from models.scorer import load_scorer
from simulation import simulate
from simulation.output import write_cohort
from simulation.settings import SimulationConfig
from training.job import run_training
from training.promotion import promote

# A cohort big enough for stable models, small enough to keep the suite fast.
SMALL_COHORT = SimulationConfig(n_patients=1_500, days=90, seed=11)
# A short fit: the tests that use the champion are about serving, scoring and monitoring, not model quality.
CHAMPION_TRAINING = TrainingConfig(xgboost=XGBoostParams(max_rounds=60, early_stopping_rounds=10), shap_plot_rows=100,
                                   subgroups=("sex",), subgroup_min_size=20, subgroup_min_positives=5)

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@dataclass(frozen=True)
class Champion:
    """The session's trained and promoted model: its store, version and the features it asks for."""

    uri: str
    version: str
    feature_names: list[str]
    root: Path

    @property
    def model_uri(self) -> str:
        return f"models:/{CHAMPION_TRAINING.registered_model}/{self.version}"


@pytest.fixture(scope="session")
def sim_cohort():
    """The small simulated cohort in memory (patients, events, truth, data_end)."""
    return simulate(SMALL_COHORT)


@pytest.fixture(scope="session")
def sim_data_dir(tmp_path_factory, sim_cohort) -> Path:
    """The small simulated cohort as a data folder: patients, events, truth and meta.json."""
    return write_cohort(sim_cohort, SMALL_COHORT, tmp_path_factory.mktemp("sim") / "cohort")


@pytest.fixture(scope="session")
def empty_store(tmp_path_factory) -> Path:
    """An MLflow SQLite store with MLflow's tables and nothing else, made once per session: opening a new store
    runs MLflow's schema migrations, seconds each time. `fresh_store` hands out copies."""
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("empty-store") / "mlflow.db"
    uri = f"sqlite:///{path}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()  # creates and migrates the tables
    return path


@pytest.fixture(scope="session")
def fresh_store(empty_store):
    """`fresh_store(folder)`: a new, empty MLflow store `folder/mlflow.db` (a copy of `empty_store`), its URI
    returned. The same tables MLflow would make there itself, without the migrations' seconds; tests about
    where a store gets created, or that none does, make theirs the ordinary way."""

    def copy(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(empty_store, folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}"

    return copy


@pytest.fixture(scope="session")
def champion(tmp_path_factory, sim_data_dir, fresh_store) -> Champion:
    """One model trained by the training job on the small cohort and promoted to champion, once per session."""
    root = tmp_path_factory.mktemp("champion")
    uri = fresh_store(root)
    summary = run_training(sim_data_dir, CHAMPION_TRAINING, tracking=uri)
    promote(CHAMPION_TRAINING, tracking=uri, override_reason="tests: a small cohort may miss the quality gates")
    scorer = load_scorer(summary.model_uri, tracking_uri=uri)
    return Champion(uri, summary.model_version, list(scorer.feature_names), root)


@pytest.fixture(scope="session")
def private_store(champion):
    """`private_store(folder)`: a copy of the champion's tracking database in `folder`, its URI returned
    (for tests that register, promote or log without touching the other tests' champion)."""

    def copy(folder: Path) -> str:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(champion.root / "mlflow.db", folder / "mlflow.db")
        return f"sqlite:///{folder / 'mlflow.db'}"

    return copy
