"""Time to dropout: the pieces on hand-made data (stops, concordance, Kaplan-Meier, the AFT fit).

The model trained on a simulated cohort and logged to MLflow is tested in test_training.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from config import TrainingConfig
from reporting.survival import kaplan_meier
from training.splits import Split
from training.survival import (
    concordance, fit_time_to_dropout, kaplan_meier_at, km_stop_probabilities, observed_stops, row_times,
    TooFewOutcomes, calibrate_horizons, stop_probability, true_stops,
)

START = pd.Timestamp("2026-01-01", tz="UTC")


def _at(day: float) -> pd.Timestamp:
    return START + pd.Timedelta(days=day)


def test_observed_stops_use_discontinuation_then_a_long_quiet_run_else_censor():
    patients = pd.DataFrame({"patient_id": ["quit", "quiet", "active", "never"], "enrolled_at": [START] * 4})
    events = pd.DataFrame({
        "patient_id": ["quit", "quit", "quiet", "active", "active", "active"],
        "timestamp": [_at(2), _at(5), _at(10), _at(3), _at(55), _at(40)],
        "event_type": ["session", "discontinued", "session", "session", "reminder_sent", "mood_checkin"],
    })
    stops = observed_stops(patients, events, _at(60), quiet_days=14).set_index("patient_id")
    assert stops.loc["quit"].tolist() == [5.0, True]  # the discontinuation day
    assert stops.loc["quiet"].tolist() == [10.0, True]  # 50 quiet days after the last session
    # Last own engagement on day 40, 20 quiet days: stopped; a reminder is not engagement.
    assert stops.loc["active"].tolist() == [40.0, True]
    assert stops.loc["never"].tolist() == [0.0, True]
    recent = observed_stops(patients, events, _at(45), quiet_days=14).set_index("patient_id")
    assert recent.loc["active"].tolist() == [45.0, False]  # censored at the data end


def test_row_times_count_from_the_as_of_day_and_refuse_unknown_patients():
    stops = pd.DataFrame({"patient_id": ["a", "b"], "stop_day": [20.0, 9.0], "stopped": [True, False]})
    table = pd.DataFrame({"patient_id": ["a", "a", "b"], "as_of_day": [7, 21, 7]})
    time, event = row_times(table, stops)
    assert time.tolist() == [13.0, 0.5, 2.0] and event.tolist() == [True, True, False]
    with pytest.raises(ValueError, match="1 training row"):
        row_times(pd.DataFrame({"patient_id": ["zz"], "as_of_day": [3]}), stops)
    truth = pd.DataFrame({"patient_id": ["a", "b"], "quit_day": [12.0, np.nan], "simulated_days": [90, 90]})
    assert true_stops(truth)[["stop_day", "stopped"]].values.tolist() == [[12.0, True], [90.0, False]]


def test_concordance_counts_only_comparable_pairs():
    time = np.array([1.0, 2.0, 3.0, 4.0])
    event = np.array([True, True, True, False])
    assert concordance(time, event, np.array([4.0, 3.0, 2.0, 1.0])) == (1.0, 6)
    assert concordance(time, event, np.array([1.0, 2.0, 3.0, 4.0])) == (0.0, 6)
    assert concordance(time, event, np.ones(4)) == (0.5, 6)
    # A censored earliest time makes no pair: its stop is unknown.
    c, pairs = concordance(time, np.array([False, True, True, False]), np.array([0.0, 3.0, 2.0, 1.0]))
    assert pairs == 3 and c == 1.0


def test_kaplan_meier_at_matches_the_report_estimator():
    rng = np.random.default_rng(3)
    time = rng.integers(1, 30, 400).astype(float)
    event = rng.random(400) < 0.6
    grid = np.array([0.5, 7.0, 14.0, 28.0, 40.0])
    km = kaplan_meier(time, event)
    expected = [1.0 if g < km["time"].iloc[0] else km.loc[km["time"] <= g, "survival"].iloc[-1] for g in grid]
    np.testing.assert_allclose(kaplan_meier_at(time, event, grid), expected, rtol=0, atol=1e-12)
    keys = np.where(np.arange(400) % 2 == 0, "a", "b")
    rows = np.arange(400)
    by_key = km_stop_probabilities(time, event, keys, rows, rows[:4], (7, 28))
    np.testing.assert_allclose(by_key[0], 1 - kaplan_meier_at(time[keys == "a"], event[keys == "a"], np.array([7, 28])))


def test_stop_probability_is_a_log_normal_cdf():
    assert stop_probability(np.array([np.log(14.0)]), 1.0, 14)[0] == pytest.approx(0.5)
    later = stop_probability(np.array([1.0, 2.0, 3.0]), 0.8, 7)
    assert np.all(np.diff(later) < 0)  # a longer predicted time: less chance of stopping within 7 days


def test_aft_model_ranks_patients_by_a_feature_that_sets_their_stop():
    # The stop comes sooner with higher x; a model that learns it beats the group-only baseline.
    rng = np.random.default_rng(5)
    n = 1200
    x = rng.random(n)
    quit_day = 7 + np.floor(rng.exponential(40 * np.exp(-2.5 * x)))
    ids = np.array([f"p{i}" for i in range(n)])
    table = pd.DataFrame({"patient_id": ids, "as_of_day": 7, "x": x})
    stops = pd.DataFrame({"patient_id": ids, "stop_day": np.minimum(quit_day, 90.0), "stopped": quit_day < 90})
    truth = pd.DataFrame({"patient_id": ids, "quit_day": np.where(quit_day < 90, quit_day, np.nan),
                          "simulated_days": 90})
    groups = pd.DataFrame({"patient_id": ids, "human_support": np.where(np.arange(n) % 2, "yes", "no")})
    split = Split(np.arange(0, 700), np.arange(700, 900), np.arange(900, n))
    outcome = fit_time_to_dropout(table, ["x"], split, stops, truth, groups, TrainingConfig())
    model, baseline = outcome.metrics["aft"], outcome.metrics["kaplan_meier"]
    assert model["c_index"] > 0.6 and model["c_index"] > baseline["c_index"] + 0.05
    assert set(outcome.by_day["aft"]) == {7} and outcome.test_rows == 300
    assert outcome.use == (model["c_index"] > baseline["c_index"] and model["mean_ece"] <= baseline["mean_ece"])
    for h in (7, 14, 28):
        assert 0 <= model[f"ece_{h}d"] < 0.2 and 0 < model[f"mean_predicted_{h}d"] < 1


def test_a_horizon_with_one_outcome_only_stops_the_survival_view_not_training():
    """On a small cohort every validation row may have stopped by 28 days: that horizon cannot be
    calibrated, so the time-to-dropout view is left out with the reason (training carries on)."""
    margin = np.linspace(0.5, 3.0, 40)
    time = np.linspace(1.0, 20.0, 40)
    event = np.ones(40, dtype=bool)  # every row stopped within 20 days: at 28 days, one outcome only
    with pytest.raises(TooFewOutcomes, match="28 days"):
        calibrate_horizons(margin, time, event, 1.0, (7, 28))
