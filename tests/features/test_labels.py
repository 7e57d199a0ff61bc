"""Dropout labels, snapshots and the training table: edge cases by hand, then a simulated cohort."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from config import FeatureConfig, LabelConfig
from simulation.settings import SimulationConfig
from features.catalog import feature_names
from features.labels import compute_labels
from features.point_in_time import compute_features
from features.snapshots import calendar_snapshot_times, snapshot_times, training_table

DAY = pd.Timedelta(days=1)
E0 = pd.Timestamp("2025-03-01T00:00:00Z")
DATA_END = E0 + 21 * DAY

# patient: (events as (day, type), as-of day, what the case shows)
CASES = {
    "gone_in_horizon": ([(1, "session"), (2, "session"), (9.4, "discontinued")], 7),
    "back_in_horizon": ([(1, "session"), (5, "session"), (12, "session")], 7),
    "gone_before": ([(1, "session"), (3, "discontinued")], 7),
    "lapsed_before": ([(0.5, "session")], 20),
    "gone_after_horizon": ([(1, "session"), (10, "mood_checkin"), (25, "discontinued")], 7),
    "active_then_gone": ([(1, "session"), (5, "session"), (15, "mood_checkin"), (16, "discontinued")], 7),
    "back_at_horizon_end": ([(1, "session"), (21, "session")], 7),
    "only_at_t": ([(7, "session")], 7),
    "only_at_t_minus_w": ([(0, "session")], 14),
    "coach_only": ([(1, "message_from_coach"), (6, "reminder_sent"), (2, "reminder_opened")], 7),
    "censored": ([(1, "session"), (6, "session")], 8),
}


def case_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows, as_of = [], []
    for pid, (events, day) in CASES.items():
        rows += [(pid, E0 + d * DAY, kind) for d, kind in events]
        as_of.append((pid, E0 + day * DAY))
    events = pd.DataFrame(rows, columns=["patient_id", "timestamp", "event_type"]).assign(value=np.nan)
    events["timestamp"] = pd.to_datetime(events["timestamp"], utc=True).dt.as_unit("us")
    as_of = pd.DataFrame(as_of, columns=["patient_id", "as_of"])
    as_of["as_of"] = pd.to_datetime(as_of["as_of"], utc=True).dt.as_unit("us")
    for frame in (events, as_of):
        frame["patient_id"] = frame["patient_id"].astype("str")
    events["event_type"] = events["event_type"].astype("str")
    return events.sample(frac=1.0, random_state=0, ignore_index=True), as_of


def labels(definition: str = "either", horizon: int = 14) -> pd.DataFrame:
    events, as_of = case_frames()
    config = LabelConfig(horizon_days=horizon, definition=definition)
    return compute_labels(events, as_of, DATA_END, config).set_index("patient_id")


def test_eligibility_needs_recent_own_use_and_no_earlier_discontinuation():
    out = labels()
    assert not out.loc["gone_before", "eligible"]
    assert not out.loc["lapsed_before", "eligible"]  # last use 19.5 days before T, window is 14
    assert not out.loc["only_at_t_minus_w", "eligible"]  # (T - 14 days, T] is open on the left
    assert not out.loc["coach_only", "eligible"]  # coach messages and reminders are not own use
    assert out.loc["only_at_t", "eligible"]  # use exactly at T counts
    assert out.loc[["gone_in_horizon", "back_in_horizon", "censored"], "eligible"].all()
    assert out.loc[~out["eligible"], "dropout"].isna().all()


def test_a_horizon_past_data_end_is_censored_never_a_dropout():
    out = labels()
    assert out.loc["censored", "censored"] and np.isnan(out.loc["censored", "dropout"])
    assert not out.loc["back_at_horizon_end", "censored"]  # T + H == data_end is still observed
    assert out["censored"].sum() == 3  # "lapsed_before" (day 20) and "only_at_t_minus_w" (day 14) too


@pytest.mark.parametrize("definition, expected", [
    ("either", {"gone_in_horizon": 1, "back_in_horizon": 0, "gone_after_horizon": 0, "active_then_gone": 1,
                "back_at_horizon_end": 0, "only_at_t": 1}),
    ("inactivity", {"gone_in_horizon": 1, "back_in_horizon": 0, "gone_after_horizon": 0, "active_then_gone": 0,
                    "back_at_horizon_end": 0, "only_at_t": 1}),
    ("discontinuation", {"gone_in_horizon": 1, "back_in_horizon": 0, "gone_after_horizon": 0,
                         "active_then_gone": 1, "back_at_horizon_end": 0, "only_at_t": 0}),
])
def test_dropout_definitions(definition, expected):
    out = labels(definition)
    assert out.loc[list(expected), "dropout"].to_dict() == {k: float(v) for k, v in expected.items()}


def test_discontinuation_outside_the_horizon_counts_once_the_horizon_reaches_it():
    events, as_of = case_frames()
    late_end = E0 + 60 * DAY
    out = compute_labels(events, as_of, late_end, LabelConfig(horizon_days=30, definition="discontinuation"))
    assert out.set_index("patient_id").loc["gone_after_horizon", "dropout"] == 1.0


def test_bad_label_settings_are_refused():
    events, as_of = case_frames()
    with pytest.raises(ValueError, match="definition must be one of"):
        compute_labels(events, as_of, DATA_END, LabelConfig(definition="vanished"))
    with pytest.raises(ValueError, match="horizon_days"):
        compute_labels(events, as_of, DATA_END, LabelConfig(horizon_days=0))


def test_snapshot_times_and_calendar_snapshots():
    patients = pd.DataFrame({"patient_id": pd.array(["a", "b"], dtype="str"),
                             "enrolled_at": pd.to_datetime(["2025-03-01T10:00Z", "2025-03-04T23:00Z"]).as_unit("us")})
    snaps = snapshot_times(patients, [7, 3])
    assert list(snaps["patient_id"]) == ["a", "a", "b", "b"] and list(snaps["as_of_day"]) == [3, 7, 3, 7]
    assert snaps["as_of"].iloc[1] == pd.Timestamp("2025-03-08T10:00Z")
    cal = calendar_snapshot_times(patients, pd.Timestamp("2025-03-20T00:00Z"), every_days=7)
    # Grid from 2025-03-01 00:00: 03-08 and 03-15 for both (03-01 00:00 is before a's enrolment).
    assert list(cal["as_of"].dt.strftime("%m-%d")) == ["03-08", "03-15", "03-08", "03-15"]
    assert list(cal["as_of_day"]) == [6, 13, 3, 10]
    with pytest.raises(ValueError):
        snapshot_times(patients, [])


# --- the training table on a simulated cohort --------------------------------------------------

@pytest.fixture(scope="module")
def sim():
    from simulation import simulate

    return simulate(SimulationConfig(n_patients=1500, days=75, chunk_patients=1500, seed=5))


def test_training_table_keeps_only_eligible_uncensored_rows_with_their_features(sim):
    table = training_table(sim.patients, sim.events, sim.data_end)
    assert list(table.columns) == ["patient_id", "as_of", "as_of_day", "enrolled_at", *feature_names(), "dropout"]
    assert set(table["as_of_day"]) <= set(FeatureConfig().as_of_days)
    assert set(table["dropout"]) == {0, 1}
    assert (table["as_of"] + 14 * DAY <= sim.data_end).all()
    assert (table["as_of"] == table["enrolled_at"] + table["as_of_day"] * DAY).all()
    # Same rows and values as the two public pieces computed on their own.
    snaps = snapshot_times(sim.patients, FeatureConfig().as_of_days)
    lab = compute_labels(sim.events, snaps, sim.data_end)
    kept = snaps[(lab["eligible"] & ~lab["censored"]).to_numpy()].reset_index(drop=True)
    assert len(kept) == len(table) and (kept["patient_id"].to_numpy() == table["patient_id"].to_numpy()).all()
    feats = compute_features(sim.patients, sim.events, kept[["patient_id", "as_of"]])
    assert np.array_equal(feats[feature_names()].to_numpy(), table[feature_names()].to_numpy(), equal_nan=True)
    # Patients who had not used the program in the 14 days before T are never in the table.
    assert (table["days_since_last_engagement"] < 14).all()


def test_labels_agree_with_the_simulators_true_dropout_probability(sim):
    from simulation import true_dropout_probability

    table = training_table(sim.patients, sim.events, sim.data_end)
    truth = true_dropout_probability(sim.truth, table[["patient_id", "as_of_day"]], LabelConfig())
    for day, rows in table.groupby("as_of_day"):
        p = truth[rows.index]
        observed = rows["dropout"].mean()
        # Within 4 binomial standard errors of the simulator's own probability, snapshot day by day.
        assert abs(observed - p.mean()) < 4 * np.sqrt(np.sum(p * (1 - p))) / len(rows) + 0.01, day


def test_calendar_snapshots_add_rows_on_a_shared_grid(sim):
    plain = training_table(sim.patients, sim.events, sim.data_end)
    both = training_table(sim.patients, sim.events, sim.data_end, calendar=True)
    assert len(both) > len(plain)
    extra = both.merge(plain[["patient_id", "as_of"]], how="left", indicator=True)
    extra = extra[extra["_merge"] == "left_only"]
    since_start = (extra["as_of"] - extra["as_of"].min()) / DAY
    assert (since_start % 7 == 0).all()
    assert not both.duplicated(["patient_id", "as_of"]).any()
