"""Latent engagement of simulated patients: trajectory class, quit hazard and daily activity.

The model is a discrete-day one. Day 0 is the enrolment day. Each patient has a silent
quit day Q drawn from a daily hazard h(k) (P(Q = k | Q >= k) = h(k)); on days k < Q
they use the program (any own engagement) with probability a(k), independently per day;
from day Q on they never use it again. Both h and a are fixed functions of the
patient's latent parameters and the day, so the truth module can compute exact
probabilities from the state at any as-of day.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.contract import GAD7_ANXIETY_CUTOFF
from simulation.settings import SimulationConfig
from simulation.cohort import site_names

NEVER_STARTER = "never_starter"

# Columns of the latent table that activity_probability and quit_hazard read.
LATENT_COLUMNS = (
    "starts",
    "activity_base",
    "fade_rate",
    "weekend_factor",
    "enrol_weekday",
    "onboarding_probability",
    "change_day",
    "hazard_multiplier",
    "hazard_early",
    "hazard_late",
    "disengagement_hazard",
    "disengagement_power",
    "hazard_cap",
    "lapse_hazard",
    "lapse_days",
    "lapse_grace_days",
)


def risk_multiplier(patients: pd.DataFrame, config: SimulationConfig, site_log_hr: np.ndarray) -> np.ndarray:
    """Product of the patient, intervention and system hazard ratios of each patient."""
    log_hr = (
        np.log(config.hr_male) * (patients["sex"].to_numpy() == "male")
        + np.log(config.hr_primary_education) * (patients["education"].to_numpy() == "primary")
        + np.log(config.hr_comorbid_anxiety)
        * (patients["baseline_gad7"].to_numpy(dtype=float) >= GAD7_ANXIETY_CUTOFF)
        + np.log(config.hr_per_4_years_older)
        * (patients["age"].to_numpy(dtype=float) - config.age_reference)
        / 4.0
        + np.log(config.hr_human_support) * patients["human_support"].to_numpy(dtype=float)
        + np.log(config.hr_reminders) * patients["reminders"].to_numpy(dtype=float)
        + np.log(config.hr_incentives) * patients["incentives"].to_numpy(dtype=float)
        + np.log(config.hr_gamification) * patients["gamification"].to_numpy(dtype=float)
    )
    referral = dict(config.hr_referral)
    log_hr += np.log(patients["referral_source"].map(lambda r: referral.get(r, 1.0)).to_numpy(dtype=float))
    site_index = pd.Index(site_names(len(site_log_hr))).get_indexer(patients["site"])
    log_hr += site_log_hr[site_index]
    return np.exp(log_hr)


def uptake_probability(patients: pd.DataFrame, config: SimulationConfig) -> np.ndarray:
    """Probability that each patient starts the program at all."""
    logit = (
        config.uptake_intercept
        + config.uptake_per_phq9_point
        * (patients["baseline_phq9"].to_numpy(dtype=float) - config.uptake_phq9_reference)
        + config.uptake_human_support * patients["human_support"].to_numpy(dtype=float)
        + config.uptake_incentives * patients["incentives"].to_numpy(dtype=float)
        + config.uptake_reminders * patients["reminders"].to_numpy(dtype=float)
        + config.uptake_female * (patients["sex"].to_numpy() == "female")
    )
    return 1.0 / (1.0 + np.exp(-logit))


def draw_latent(
    patients: pd.DataFrame, config: SimulationConfig, rng: np.random.Generator, site_log_hr: np.ndarray
) -> pd.DataFrame:
    """Draw each patient's trajectory class and the parameters of their hazard and activity."""
    n = len(patients)
    classes = config.trajectories
    shares = np.array([c.share for c in classes], dtype=float)
    class_idx = rng.choice(len(classes), size=n, p=shares / shares.sum())
    starts = rng.random(n) < uptake_probability(patients, config)

    def per_class(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=float)[class_idx]

    beta_a = per_class([c.activity_beta[0] for c in classes])
    beta_b = per_class([c.activity_beta[1] for c in classes])
    activity = rng.beta(beta_a, beta_b)
    female = patients["sex"].to_numpy() == "female"
    support = patients["human_support"].to_numpy(dtype=bool)
    activity *= np.where(female, config.activity_female, 1.0) * np.where(support, config.activity_human_support, 1.0)
    activity = np.minimum(activity, config.activity_cap)

    fade_low = per_class([c.fade_days[0] for c in classes])
    fade_high = per_class([c.fade_days[1] for c in classes])
    fade_days = fade_low + (fade_high - fade_low) * rng.random(n)
    fade_rate = np.where(fade_high > 0, 1.0 / np.maximum(fade_days, 1e-9), 0.0)

    change_low = per_class([c.change_day[0] for c in classes])
    change_extra = per_class([c.change_day[1] for c in classes])
    change_day = np.where(
        change_low + change_extra > 0,
        change_low + rng.gamma(2.0, np.maximum(change_extra, 1e-9) / 2.0),
        np.inf,
    )

    risk = risk_multiplier(patients, config, site_log_hr)
    frailty = np.exp(rng.normal(0.0, config.frailty_sd, size=n))
    # The same factors that raise the quit hazard make engagement fade faster.
    fade_rate = fade_rate * risk

    names = np.array([c.name for c in classes], dtype=object)[class_idx]
    names[~starts] = NEVER_STARTER
    discontinue = np.where(
        starts, per_class([c.discontinue_probability for c in classes]), config.never_starter_discontinue_probability
    )
    return pd.DataFrame(
        {
            "patient_id": patients["patient_id"].to_numpy(),
            "trajectory": pd.array(names, dtype="str"),
            "starts": starts,
            "activity_base": np.where(starts, activity, 0.0),
            "fade_rate": fade_rate,
            "weekend_factor": np.full(n, config.weekend_factor),
            "enrol_weekday": patients["enrolled_at"].dt.day_of_week.to_numpy(dtype=np.int64),
            "onboarding_probability": np.where(starts, config.onboarding_probability, 0.0),
            "change_day": change_day,
            "hazard_multiplier": risk * frailty,
            "hazard_early": per_class([c.hazard_early for c in classes]),
            "hazard_late": per_class([c.hazard_late for c in classes]),
            "disengagement_hazard": np.full(n, config.disengagement_hazard),
            "disengagement_power": np.full(n, config.disengagement_power),
            "hazard_cap": np.full(n, config.hazard_cap),
            "lapse_hazard": np.full(n, config.lapse_hazard),
            "lapse_days": np.full(n, config.lapse_days),
            "lapse_grace_days": np.full(n, config.lapse_grace_days),
            "risk_multiplier": risk,
            "frailty": frailty,
            "discontinue_probability": discontinue,
            "symptom_response": per_class([c.symptom_response for c in classes]) * rng.uniform(0.6, 1.4, size=n),
            "intensity": per_class([c.intensity for c in classes]) * rng.lognormal(0.0, config.intensity_sd, size=n),
        }
    )


def _col(latent: Mapping[str, object] | pd.DataFrame, name: str) -> np.ndarray:
    return np.asarray(latent[name])[:, None]


def engagement_level(latent: Mapping[str, object] | pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """The latent engagement level on day k (activity probability before the weekly rhythm)."""
    return _col(latent, "activity_base") * np.exp(-_col(latent, "fade_rate") * np.atleast_2d(days))


def activity_probability(latent: Mapping[str, object] | pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """P(any own engagement on day k | not quit by day k), rows = patients, columns = `days`."""
    days = np.atleast_2d(days)
    a = engagement_level(latent, days)
    weekday = (_col(latent, "enrol_weekday") + days) % 7
    a = np.where(weekday >= 5, a * _col(latent, "weekend_factor"), a)
    return np.where(days == 0, np.maximum(a, _col(latent, "onboarding_probability")), a)


def day_hazard(latent: Mapping[str, object] | pd.DataFrame, days: np.ndarray) -> np.ndarray:
    """The part of the quit hazard set by the day: a base that may step up on the change day,
    plus one that grows as engagement wanes (before the hazard multiplier)."""
    days = np.atleast_2d(days)
    base = np.where(days < _col(latent, "change_day"), _col(latent, "hazard_early"), _col(latent, "hazard_late"))
    waning = _col(latent, "disengagement_hazard") * (1.0 - engagement_level(latent, days)) ** _col(
        latent, "disengagement_power"
    )
    return base + waning


def lapse_hazard(latent: Mapping[str, object] | pd.DataFrame, silent_days: np.ndarray | int) -> np.ndarray:
    """The part of the quit hazard that grows with each day of silence (before the multiplier)."""
    overdue = np.maximum(np.asarray(silent_days) - _col(latent, "lapse_grace_days"), 0.0)
    return _col(latent, "lapse_hazard") * (1.0 - np.exp(-overdue / _col(latent, "lapse_days")))


def combine_hazard(
    latent: Mapping[str, object] | pd.DataFrame, days: np.ndarray, by_day: np.ndarray, by_lapse: np.ndarray
) -> np.ndarray:
    """The daily quit hazard from its two parts: multiplied, capped, and fixed on day 0."""
    h = np.minimum(_col(latent, "hazard_multiplier") * (by_day + by_lapse), _col(latent, "hazard_cap"))
    # Starters always get day 0; never-starters are gone from day 0.
    return np.where(np.atleast_2d(days) == 0, np.where(_col(latent, "starts"), 0.0, 1.0), h)


def quit_hazard(
    latent: Mapping[str, object] | pd.DataFrame, days: np.ndarray, silent_days: np.ndarray | int = 0
) -> np.ndarray:
    """P(silent quit on day k | not quit before day k, silent the `silent_days` days before k).

    Rows are patients; `days` and `silent_days` broadcast against a (patients, 1) column.
    What drives quitting shows in recent use: waning engagement and runs of silent days.
    """
    return combine_hazard(latent, days, day_hazard(latent, days), lapse_hazard(latent, silent_days))


def draw_activity(
    latent: pd.DataFrame, days: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Draw daily activity (patients x days), the silent quit day (-1: none) and who discontinues."""
    n = len(latent)
    k = np.arange(days)[None, :]
    activity = activity_probability(latent, k)
    quit_draw = rng.random((n, days))
    use_draw = rng.random((n, days)) < activity
    active = np.zeros((n, days), dtype=bool)
    quit_day = np.full(n, -1)
    in_program = np.ones(n, dtype=bool)
    silent = np.zeros((n, 1))
    for day in range(days):
        quits = in_program & (quit_draw[:, day] < quit_hazard(latent, day, silent)[:, 0])
        quit_day[quits] = day
        in_program &= ~quits
        active[:, day] = in_program & use_draw[:, day]
        silent = np.where(active[:, day : day + 1], 0.0, silent + 1.0)
    discontinued = (quit_day >= 0) & (rng.random(n) < latent["discontinue_probability"].to_numpy())
    return active, quit_day, discontinued


def silent_days_before(active: np.ndarray, day: np.ndarray) -> np.ndarray:
    """Consecutive days without use just before `day`, counted from enrolment (one row per patient)."""
    k = np.arange(active.shape[1])
    last = np.maximum.accumulate(np.where(active, k, -1), axis=1)
    before = np.where(day > 0, last[np.arange(len(day)), np.clip(day - 1, 0, None)], -1)
    return np.where(before >= 0, day - 1 - before, day)
