"""The simulator's support program: a true effect that depends on state, and WCLS recovering it on an MRT."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from outreach.effect import estimate_effect
from outreach.settings import PolicySettings
from simulation.outreach import OutreachSimConfig, TrueBenefit, run_program
from simulation.settings import SimulationConfig


def _config(n_patients: int, seed: int) -> OutreachSimConfig:
    return OutreachSimConfig(cohort=replace(SimulationConfig(), n_patients=n_patients, days=70, seed=seed))


MRT = PolicySettings(policy="randomized", secret="test-secret", band_low=0.0, band_high=1.0, probability=0.5)


@pytest.fixture(scope="module")
def mrt_run():
    return run_program(_config(2500, seed=21), MRT)


def test_true_effect_is_largest_for_patients_slipping_but_reachable(mrt_run):
    d = mrt_run.decisions
    doing_well = d[d["risk"] < 0.05]["true_effect"].mean()
    long_gone = d[d["risk"] > 0.999]["true_effect"].mean()
    slipping = d[(d["risk"] > 0.2) & (d["risk"] < 0.9) & (d["days_since_last_use"] <= 4)]["true_effect"].mean()
    assert slipping > 0.10
    assert doing_well < 0.02 and long_gone < 0.005
    by_silence = d.groupby(d["days_since_last_use"].clip(upper=10))["true_effect"].mean()
    assert by_silence.idxmax() in (1.0, 2.0, 3.0)
    assert by_silence.loc[10.0] < 0.01


def test_wcls_recovers_the_true_effect_on_a_simulated_mrt(mrt_run):
    d = mrt_run.decisions
    assert set(d["probability"]) == {0.5}
    result = estimate_effect(d, moderators=("days_since_last_use",))
    truth = d["true_effect"].mean()
    assert result.overall.lower < truth < result.overall.upper
    assert abs(result.overall.estimate - truth) < 2.5 * result.overall.std_error
    for tier in result.by_tier:
        true_tier = d.loc[d["tier"] == tier.term, "true_effect"].mean()
        assert tier.lower < true_tier < tier.upper, tier.term
    by_tier = {e.term: e.estimate for e in result.by_tier}
    assert by_tier["medium"] > by_tier["low"]
    # Nobody in the top tier (already quit) comes back, with or without a call: no variation to estimate from.
    assert result.skipped_tiers == ["very_high"]
    assert d.loc[d["tier"] == "very_high", "outcome"].max() == 0


def test_realized_propensity_keeps_wcls_right_when_capacity_binds():
    capped = PolicySettings(policy="randomized", secret="test-secret", band_low=0.2, band_high=1.0,
                            probability=0.5, capacity_per_coach=3, capacity_per_day=8)
    d = run_program(_config(2500, seed=22), capped).decisions
    available = d[(d["probability"] > 0) & (d["probability"] < 1)]
    assert (available["probability"] < 0.5).mean() > 0.1  # the capacity did bind
    per_day = d.groupby(["time"])["action"].sum()
    assert per_day.max() <= 8
    result = estimate_effect(d)
    truth = available["true_effect"].mean()
    assert result.overall.lower < truth < result.overall.upper


def test_runs_are_reproducible_and_policies_share_the_random_draws():
    config = _config(300, seed=5)
    first = run_program(config, MRT).decisions
    again = run_program(config, MRT).decisions
    assert first.equals(again)
    oracle = run_program(config, PolicySettings(policy="benefit", capacity_per_day=2), TrueBenefit()).decisions
    assert oracle.groupby("time")["action"].sum().max() <= 2
    # The first decision day is the same under both policies (nobody has been contacted yet).
    day0 = first["time"].min()
    assert np.allclose(first.loc[first["time"] == day0, "true_effect"], oracle.loc[oracle["time"] == day0,
                                                                                   "true_effect"])
