"""Baseline covariates and enrolment times of simulated patients."""

from __future__ import annotations

import numpy as np
import pandas as pd

from simulation.settings import SimulationConfig

DAY_US = 86_400 * 1_000_000
HOUR_US = 3_600 * 1_000_000


def study_start_us(config: SimulationConfig) -> int:
    """The study start as microseconds since the Unix epoch (UTC)."""
    return int(pd.Timestamp(config.study_start).tz_convert("UTC").value // 1_000)


def data_end(config: SimulationConfig) -> pd.Timestamp:
    """The end of observation: study start + `days` days, UTC."""
    return pd.Timestamp(study_start_us(config) + config.days * DAY_US, unit="us", tz="UTC")


def site_names(n_sites: int) -> list[str]:
    """The names of the simulated sites, in order."""
    return [f"site-{s + 1:02d}" for s in range(n_sites)]


def _choice(rng: np.random.Generator, shares: tuple[tuple[str, float], ...], n: int) -> np.ndarray:
    names = np.array([name for name, _ in shares], dtype=object)
    p = np.array([share for _, share in shares], dtype=float)
    return names[rng.choice(len(names), size=n, p=p / p.sum())]


def draw_patients(config: SimulationConfig, rng: np.random.Generator, n: int, first_index: int) -> pd.DataFrame:
    """Draw `n` patients: identifiers, enrolment time and every contract covariate."""
    ids = np.array([f"P{i:07d}" for i in range(first_index, first_index + n)], dtype=object)
    enrol_days = max(1, int(config.enrolment_share * config.days))
    day = rng.integers(0, enrol_days, size=n)
    # Most people sign up in the daytime; the hour is UTC and only shapes the day boundaries.
    time_of_day = np.clip(rng.normal(13.0, 3.0, size=n), 0.5, 23.5) * HOUR_US
    enrol_us = study_start_us(config) + day * DAY_US + time_of_day.astype(np.int64)

    low, high = config.age_range
    age = np.clip(np.rint(rng.normal(config.age_mean, config.age_sd, size=n)), low, high).astype(np.int64)
    phq9 = np.clip(np.rint(rng.normal(config.phq9_mean, config.phq9_sd, size=n)), 0, 27)
    gad7 = np.clip(
        np.rint(config.gad7_slope * phq9 + rng.normal(config.gad7_intercept, config.gad7_sd, size=n)), 0, 21
    )

    program_names = np.array([p[0] for p in config.programs], dtype=object)
    program_share = np.array([p[1] for p in config.programs], dtype=float)
    program_idx = rng.choice(len(program_names), size=n, p=program_share / program_share.sum())
    p_support = np.array([p[2] for p in config.programs])[program_idx]
    p_gamified = np.array([p[3] for p in config.programs])[program_idx]

    sites = np.array(site_names(config.n_sites), dtype=object)
    return pd.DataFrame(
        {
            "patient_id": pd.array(ids, dtype="str"),
            "enrolled_at": pd.to_datetime(enrol_us, unit="us", utc=True).as_unit("us"),
            "age": pd.array(age, dtype="Int64"),
            "sex": pd.array(_choice(rng, config.sex_shares, n), dtype="str"),
            "education": pd.array(_choice(rng, config.education_shares, n), dtype="str"),
            "race_ethnicity": pd.array(_choice(rng, config.race_ethnicity_shares, n), dtype="str"),
            "baseline_phq9": pd.array(phq9.astype(np.int64), dtype="Int64"),
            "baseline_gad7": pd.array(gad7.astype(np.int64), dtype="Int64"),
            "program": pd.array(program_names[program_idx], dtype="str"),
            "human_support": rng.random(n) < p_support,
            "gamification": rng.random(n) < p_gamified,
            "incentives": rng.random(n) < config.incentives_share,
            "reminders": rng.random(n) < config.reminders_share,
            "referral_source": pd.array(_choice(rng, config.referral_shares, n), dtype="str"),
            "site": pd.array(sites[rng.integers(0, config.n_sites, size=n)], dtype="str"),
        }
    )


def enrolled_us(patients: pd.DataFrame) -> np.ndarray:
    """Enrolment times as microseconds since the Unix epoch."""
    return patients["enrolled_at"].dt.as_unit("us").array.asi8
