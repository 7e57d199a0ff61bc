"""Shared fixtures: one small simulated cohort written as a data folder, reused across test files."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from simulation.settings import SimulationConfig

# A cohort big enough for stable models, small enough to keep the suite fast.
SMALL_COHORT = replace(SimulationConfig(), n_patients=1_500, days=90, seed=11)

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


@pytest.fixture(scope="session")
def sim_cohort():
    """The small simulated cohort in memory (patients, events, truth, data_end)."""
    from simulation import simulate

    return simulate(SMALL_COHORT)


@pytest.fixture(scope="session")
def sim_data_dir(tmp_path_factory, sim_cohort) -> Path:
    """The small simulated cohort as a data folder: patients, events, truth and meta.json."""
    from simulation.output import write_cohort

    return write_cohort(sim_cohort, SMALL_COHORT, tmp_path_factory.mktemp("sim") / "cohort")
