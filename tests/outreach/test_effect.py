"""The causal excursion effect (WCLS): known answers recovered, bad columns named, results written and tracked."""

from __future__ import annotations

import json

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from outreach.effect import estimate_effect
from outreach.effect_job import run_effect
from outreach.errors import OutreachError
from outreach.policy import Candidate
from outreach.settings import EffectColumns, EffectSettings


def _table(n_units=200, per_unit=8, seed=0, effect=None, noise=True, p=0.5):
    """A randomized table: Y = 0.4 + effect(tier) * A (+ Bernoulli noise), p known."""
    rng = np.random.default_rng(seed)
    n = n_units * per_unit
    tier = np.where(rng.random(n) < 0.5, "high", "low")
    action = (rng.random(n) < p).astype(int)
    effect = effect or {"high": 0.2, "low": 0.2}
    mean = 0.4 + np.vectorize(effect.get)(tier) * action
    outcome = (rng.random(n) < mean).astype(int) if noise else mean
    return pd.DataFrame({"unit": np.repeat([f"u{i}" for i in range(n_units)], per_unit),
                         "time": np.tile(np.arange(per_unit), n_units), "action": action,
                         "probability": p, "outcome": outcome, "tier": tier})


def test_constant_effect_without_noise_is_recovered_exactly():
    result = estimate_effect(_table(noise=False))
    assert result.overall.estimate == pytest.approx(0.2, abs=1e-10)
    assert result.overall.std_error == pytest.approx(0.0, abs=1e-8)
    assert {e.term: e.estimate for e in result.by_tier} == pytest.approx({"high": 0.2, "low": 0.2}, abs=1e-10)


def test_constant_effect_with_noise_is_covered_by_the_interval():
    result = estimate_effect(_table(n_units=400, seed=1))
    assert result.overall.lower < 0.2 < result.overall.upper
    assert abs(result.overall.estimate - 0.2) < 0.03
    assert result.n_units == 400 and result.n_available == 3200


def test_effect_moderated_by_tier_is_recovered():
    data = _table(n_units=400, seed=5, effect={"high": 0.3, "low": 0.0})
    result = estimate_effect(data)
    by_tier = {e.term: e for e in result.by_tier}
    assert by_tier["high"].lower < 0.3 < by_tier["high"].upper
    assert by_tier["low"].lower < 0.0 < by_tier["low"].upper
    assert by_tier["high"].lower > by_tier["low"].upper
    # The joint fit is also the benefit model of the benefit policy.
    now = pd.Timestamp("2026-03-02T08:00Z").to_pydatetime()
    assert result.expected_benefit(Candidate("x", now, 0.5, tier="high")) == pytest.approx(
        by_tier["high"].estimate, abs=0.02)


def test_unequal_probabilities_are_weighted_correctly():
    """p differs by tier and the outcome depends on tier: a naive comparison is biased, WCLS is not."""
    rng = np.random.default_rng(9)
    n_units, per_unit = 600, 6
    n = n_units * per_unit
    high = rng.random(n) < 0.5
    p = np.where(high, 0.8, 0.2)
    action = (rng.random(n) < p).astype(int)
    outcome = (rng.random(n) < np.where(high, 0.2, 0.7) + 0.1 * action).astype(int)
    data = pd.DataFrame({"unit": np.repeat(np.arange(n_units), per_unit), "time": np.tile(np.arange(per_unit),
                         n_units), "action": action, "probability": p, "outcome": outcome})
    naive = outcome[action == 1].mean() - outcome[action == 0].mean()
    result = estimate_effect(data, columns=EffectColumns(tier=""))
    assert naive < 0.0
    assert result.overall.lower < 0.1 < result.overall.upper


def test_other_programs_columns_map_and_unrandomized_rows_are_left_out():
    data = _table(noise=False).rename(columns={"unit": "user_id", "time": "decision_point", "action": "sent",
                                              "probability": "prob", "outcome": "opened_app"})
    data.loc[:9, "prob"] = 0.0
    data.loc[:9, "sent"] = 0
    columns = EffectColumns(unit="user_id", time="decision_point", action="sent", probability="prob",
                            outcome="opened_app", tier="")
    result = estimate_effect(data, columns)
    assert result.n_available == len(data) - 10
    assert result.overall.estimate == pytest.approx(0.2, abs=1e-10)


@pytest.mark.parametrize("change, message", [
    (lambda d: d.drop(columns="probability"), "missing column 'probability'"),
    (lambda d: d.assign(action=d["action"].where(d.index != 3, 2)), "column 'action' must be 0 or 1; row 4"),
    (lambda d: d.assign(probability=d["probability"].where(d.index != 5, 1.4)),
     "column 'probability' must be in \\[0, 1\\]; row 6"),
    (lambda d: d.assign(outcome=d["outcome"].where(d.index != 7, np.nan)), "column 'outcome' needs a number"),
    (lambda d: pd.concat([d, d.iloc[[0]]], ignore_index=True), "repeats the 'unit' and 'time'"),
])
def test_bad_columns_are_named(change, message):
    with pytest.raises(OutreachError, match=message):
        estimate_effect(change(_table(noise=False)))


def test_missing_moderator_is_named():
    with pytest.raises(OutreachError, match="missing column 'days_silent' \\(the moderator column\\)"):
        estimate_effect(_table(), moderators=("days_silent",))


def test_run_effect_writes_json_html_and_an_mlflow_run(tmp_path, fresh_store):
    data = _table(n_units=150, seed=1).assign(days_silent=lambda d: np.arange(len(d)) % 5)
    data.to_parquet(tmp_path / "decisions.parquet")
    uri = fresh_store(tmp_path)
    settings = EffectSettings(decisions=tmp_path / "decisions.parquet", out=tmp_path / "effect",
                              moderators=("days_silent",), tracking_uri=uri)
    result = run_effect(settings)
    saved = json.loads((tmp_path / "effect" / "effect.json").read_text())
    assert saved["overall"]["estimate"] == pytest.approx(result.overall.estimate)
    html = (tmp_path / "effect" / "effect.html").read_text()
    assert "Effect of support on re-engagement" in html and "By days_silent" in html
    assert f"{100 * result.overall.estimate:+.1f}" in html
    assert "u1" not in html  # no unit (patient) ids on the page
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("lapse-effect")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.metrics["overall.effect"] == pytest.approx(result.overall.estimate)
    assert run.data.params["moderators"] == "days_silent"
    names = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert names == {"effect.json", "effect.html"}
    mlflow.set_tracking_uri(None)
