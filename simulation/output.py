"""Writing a simulated cohort as a data folder: the contract tables, the truth, its true probabilities,
meta.json and lapse.toml."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from config import DEFAULT_PATHS, LapseError, ProgramConfig
from features.atomic import atomic_path
from features.io import TRUE_PROBABILITY_TABLE, write_table
from simulation.settings import SimulationConfig
from simulation.simulator import SimulatedCohort
from simulation.truth import true_probability_table

META_FILE = DEFAULT_PATHS.meta_file


class OutputExists(LapseError, FileExistsError):
    """The output folder already holds files and replacing it was not asked for."""

    exit_code = 1


def program_settings(config: SimulationConfig) -> ProgramConfig:
    """The simulated program's recommended use: its module pace, lapse's defaults for the rest."""
    return ProgramConfig(modules_per_week=config.modules_per_week)


def settings_toml(config: SimulationConfig) -> str:
    """The lapse.toml written next to a simulated cohort: its [program] table."""
    lines = ["# lapse settings for this data folder (docs/configuration.md).", "", "[program]"]
    lines += [f"{name} = {value!r}" for name, value in program_settings(config).model_dump().items()]
    return "\n".join(lines) + "\n"


def cohort_meta_parameters(config: SimulationConfig) -> dict:
    """The simulation parameters as meta.json records them (JSON types: tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def cohort_meta(cohort: SimulatedCohort, config: SimulationConfig) -> dict:
    """What meta.json records: the end of observation, the seed, the size and every parameter."""
    return {
        "data_end": cohort.data_end.isoformat(),
        "seed": config.seed,
        "n_patients": config.n_patients,
        "days": config.days,
        "study_start": config.study_start,
        "generator": "lapse simulate",
        "parameters": cohort_meta_parameters(config),
    }


def write_cohort(cohort: SimulatedCohort, config: SimulationConfig, out_dir: str | Path, force: bool = False) -> Path:
    """Write the cohort into `out_dir`; the folder appears complete or not at all.

    A non-empty `out_dir` is refused unless `force`, in which case it is replaced whole.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise OutputExists(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExists(f"{out}: folder is not empty (use --force to replace it)")
    with atomic_path(out, folder=True) as staging:
        write_table(cohort.patients, staging, "patients")
        write_table(cohort.events, staging, "events")
        write_table(cohort.truth, staging, "truth")
        write_table(true_probability_table(cohort.truth), staging, TRUE_PROBABILITY_TABLE)
        (staging / META_FILE).write_text(json.dumps(cohort_meta(cohort, config), indent=2) + "\n")
        (staging / DEFAULT_PATHS.config_file).write_text(settings_toml(config))
    return out
