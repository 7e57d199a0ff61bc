"""Outreach in the simulator: a program that decides human support every week under a trigger policy,
where support has a TRUE effect on re-engagement that depends on the patient's state.

Patients come from the cohort simulator's generative model (simulation.cohort, simulation.engagement:
uptake, trajectory classes, quit hazard, daily use). On days 7, 14, 21, ... after enrolment a patient
who used the program in the last 14 days is due a decision. The policy (outreach.policy) chooses whom
a coach contacts, within coach capacity. A contact reaches the patient with probability
reach_max * 0.5 ** (silent days / reach_half_life_days): the longer silent, the harder to reach.
A reached patient who has not silently quit gets, on the j-th day after the contact (j < window):

- odds of using the program that day multiplied by contact_odds_ratio ** exp(-j / effect_decay_days)
  (3.5: Drink Less MRT, a notification made opening the app ~3.5 times as likely, 95% CI 2.9-4.3);
- the quit hazard multiplied by hazard_ratio ** exp(-j / effect_decay_days)
  (0.34: human guidance, dropout 11.7% vs 34.0%, Torous 2020; Forsell 2019, OR 0.33 for adapted support).

Reach (0.7 at best, halving every 3 silent days) and the decay (3 days) are assumptions, not published.
So the true effect is near zero for patients doing well (they use it anyway), near zero for those long
gone (quit: nothing brings them back; or unreachable), and largest for those slipping but reachable.

The proximal outcome is own use within `window_days` (7) from the decision. Decisions of one patient are
7 days apart, so each window holds one decision, and the true effect of each decision is exact:
E[Y | A=1, state] - E[Y | A=0, state] along the all-silent path (as in simulation.truth). All random
draws are indexed by (patient, day), so runs under different policies share them (common random numbers).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import NamedTuple

import numpy as np
import pandas as pd

from models.scorer import tier_names
from outreach.policy import BenefitModel, Candidate, decide
from outreach.settings import PolicySettings
from simulation.cohort import DAY_US, draw_patients, enrolled_us, study_start_us
from simulation.engagement import LATENT_COLUMNS, activity_probability, draw_latent, quit_hazard
from simulation.settings import SimulationConfig
from simulation.simulator import check_config

TRUE_EFFECT = "true_effect"


@dataclass(frozen=True)
class OutreachSimConfig:
    """A simulated support program: the cohort, the decision rhythm and the true effect of support."""

    cohort: SimulationConfig = field(default_factory=lambda: replace(SimulationConfig(), n_patients=1000, days=84))
    first_decision_day: int = 7
    decision_every_days: int = 7
    # The proximal outcome: own use in the days [decision day, decision day + window_days).
    window_days: int = 7
    # Due a decision only with own use in the last this many days (as the label's eligibility).
    engaged_within_days: int = 14
    n_coaches: int = 4
    reach_max: float = 0.7
    reach_half_life_days: float = 3.0
    contact_odds_ratio: float = 3.5
    hazard_ratio: float = 0.34
    effect_decay_days: float = 3.0
    # Tiers of the risk of no use in the window without support, highest first (name, lowest risk).
    tiers: tuple[tuple[str, float], ...] = (("very_high", 0.95), ("high", 0.5), ("medium", 0.2), ("low", 0.0))


class ProgramRun(NamedTuple):
    """One simulated program: one row per decision (with its true effect), the patients and their latent truth."""

    decisions: pd.DataFrame
    patients: pd.DataFrame
    truth: pd.DataFrame


class TrueBenefit:
    """The oracle: ranks candidates by their true effect (only the simulator knows it)."""

    def expected_benefit(self, candidate: Candidate) -> float:
        return float(candidate.moderators[TRUE_EFFECT])


def _boosted(h: np.ndarray, a: np.ndarray, since: np.ndarray, config: OutreachSimConfig) -> tuple[np.ndarray, ...]:
    """Quit hazard and use probability on the day `since` days after a reaching contact."""
    strength = np.exp(-since / config.effect_decay_days)
    with np.errstate(divide="ignore"):
        logit = np.log(a) - np.log1p(-a)
    a1 = np.where(a > 0, 1.0 / (1.0 + np.exp(-(logit + np.log(config.contact_odds_ratio) * strength))), 0.0)
    return h * config.hazard_ratio ** strength, a1


def no_use_probability(latent: dict, day: np.ndarray, silent: np.ndarray, config: OutreachSimConfig,
                       reached: bool) -> np.ndarray:
    """P(no own use in the window from `day` | not quit, `silent` days silent), with or without a reached contact."""
    path = np.ones(len(day))
    none = np.zeros(len(day))
    for j in range(config.window_days):
        h = quit_hazard(latent, (day + j)[:, None], (silent + j)[:, None])[:, 0]
        a = activity_probability(latent, (day + j)[:, None])[:, 0]
        if reached:
            h, a = _boosted(h, a, np.full(len(day), float(j)), config)
        none += path * h
        path *= (1.0 - h) * (1.0 - a)
    return none + path


def reach_probability(silent: np.ndarray, config: OutreachSimConfig) -> np.ndarray:
    """P(a contact reaches the patient) after `silent` days without use."""
    return config.reach_max * 0.5 ** (silent / config.reach_half_life_days)


def _cohort(config: OutreachSimConfig) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    cfg = config.cohort
    check_config(cfg)
    site_seed, patient_seed, day_seed = np.random.SeedSequence(cfg.seed).spawn(3)
    site_log_hr = np.random.default_rng(site_seed).normal(0.0, cfg.site_log_hr_sd, cfg.n_sites)
    rng = np.random.default_rng(patient_seed)
    patients = draw_patients(cfg, rng, cfg.n_patients, 0)
    latent = draw_latent(patients, cfg, rng, site_log_hr)
    # Quit, use and reach draws per (patient, day since enrolment): shared by every policy.
    draws = np.random.default_rng(day_seed).random((3, cfg.n_patients, cfg.days))
    return patients, latent, draws


def run_program(config: OutreachSimConfig, policy: PolicySettings, benefit: BenefitModel | None = None) -> ProgramRun:
    """Run the program under `policy` (and `benefit` for the benefit policy) over the cohort's days."""
    cfg = config.cohort
    patients, latent, draws = _cohort(config)
    n, days, window = cfg.n_patients, cfg.days, config.window_days
    L = {c: latent[c].to_numpy() for c in LATENT_COLUMNS}
    ids = patients["patient_id"].to_numpy(dtype=object)
    start_us = study_start_us(cfg)
    enrol_day = (enrolled_us(patients) - start_us) // DAY_US
    coaches = np.array([f"coach-{i % config.n_coaches + 1}" for i in range(n)], dtype=object)
    start = pd.Timestamp(start_us, unit="us", tz="UTC").to_pydatetime()

    in_program = np.ones(n, dtype=bool)
    silent = np.zeros(n)
    last_use = np.full(n, -(10**6))
    contact_day = np.full(n, -(10**6))
    active = np.zeros((n, days), dtype=bool)
    parts = []
    for c in range(days):
        k = c - enrol_day
        present = k >= 0
        due = np.flatnonzero(present & (k >= config.first_decision_day)
                             & ((k - config.first_decision_day) % config.decision_every_days == 0)
                             & (k - last_use <= config.engaged_within_days) & (c + window <= days))
        if len(due):
            parts.append(_decide_day(config, policy, benefit, L, due, k[due], silent[due], in_program[due],
                                     ids, coaches, start + timedelta(days=c)))
            contacted = due[parts[-1]["action"].to_numpy() == 1]
            reached = contacted[draws[2, contacted, k[contacted]] < reach_probability(silent[contacted], config)]
            contact_day[reached] = k[reached]
        today = np.flatnonzero(present & in_program)
        kk = k[today]
        sub = {name: values[today] for name, values in L.items()}
        h = quit_hazard(sub, kk[:, None], silent[today][:, None])[:, 0]
        a = activity_probability(sub, kk[:, None])[:, 0]
        since = (kk - contact_day[today]).astype(float)
        fresh = since < window
        h[fresh], a[fresh] = _boosted(h[fresh], a[fresh], since[fresh], config)
        quits = draws[0, today, kk] < h
        in_program[today[quits]] = False
        used = ~quits & (draws[1, today, kk] < a)
        active[today, kk] = used
        silent[present] += 1.0
        silent[today[used]] = 0.0
        last_use[today[used]] = kk[used]

    decisions = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(decisions):
        rows = pd.Index(ids).get_indexer(decisions["unit"])
        day = decisions["patient_day"].to_numpy()
        in_window = np.arange(days)[None, :] - day[:, None]
        decisions["outcome"] = ((in_window >= 0) & (in_window < window) & active[rows]).any(axis=1).astype(int)
    return ProgramRun(decisions, patients, latent)


def _decide_day(config: OutreachSimConfig, policy: PolicySettings, benefit: BenefitModel | None, L: dict,
                due: np.ndarray, day: np.ndarray, silent: np.ndarray, in_program: np.ndarray, ids: np.ndarray,
                coaches: np.ndarray, moment) -> pd.DataFrame:
    """Today's due patients: their true state, the policy's decisions and the true effect of each."""
    sub = {name: values[due] for name, values in L.items()}
    none0 = np.where(in_program, no_use_probability(sub, day, silent, config, reached=False), 1.0)
    none1 = np.where(in_program, no_use_probability(sub, day, silent, config, reached=True), 1.0)
    effect = reach_probability(silent, config) * (none0 - none1)
    risk = np.clip(none0, 0.0, 1.0)
    tiers = tier_names(risk, config.tiers)
    candidates = [
        Candidate(patient_id=str(ids[i]), decision_time=moment, risk=float(risk[j]), tier=str(tiers[j]),
                  coach=str(coaches[i]),
                  moderators={"days_since_last_use": float(silent[j]), TRUE_EFFECT: float(effect[j])})
        for j, i in enumerate(due)
    ]
    decided = decide(candidates, policy, benefit)
    return pd.DataFrame({
        "unit": [str(ids[i]) for i in due],
        "time": pd.Timestamp(moment),
        "patient_day": day,
        "action": np.array([d.action for d in decided], dtype=int),
        "probability": [d.propensity for d in decided],
        "risk": risk,
        "tier": tiers.astype(str),
        "days_since_last_use": silent,
        TRUE_EFFECT: effect,
        "offered_probability": [d.offered_probability for d in decided],
        "draw": [d.draw for d in decided],
        "policy": policy.policy,
        "policy_version": [d.policy_version for d in decided],
        "coach": [str(coaches[i]) for i in due],
    })
