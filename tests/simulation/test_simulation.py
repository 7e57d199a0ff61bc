"""The cohort simulator: determinism, the data contract, published effect directions, base rates,
true probabilities against realised labels, and the `lapse simulate` command."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from config import FeatureConfig, LabelConfig
from simulation.settings import SimulationConfig
from features.contract import EVENT_COLUMNS, GAD7_ANXIETY_CUTOFF, OWN_ENGAGEMENT, PATIENT_COLUMNS, VALUE_RULES
from features.labels import compute_labels
from features.snapshots import snapshot_times
from features.validate import load_cohort
from simulation import simulate, true_dropout_probability

DAY = pd.Timedelta(days=1)
OWN = [str(t) for t in OWN_ENGAGEMENT]
TINY = replace(SimulationConfig(), n_patients=300, days=40, chunk_patients=128, seed=3)
# Everyone enrols in the first 15 days, so each patient is observed for at least 45 days.
EFFECTS = replace(SimulationConfig(), n_patients=20_000, days=60, enrolment_share=0.25, seed=4)

# Documented in docs/simulator.md ("Base rates"): (low, high) per measure.
BASE_RATES = {
    "uptake": (0.65, 0.85),
    "week_4_active": (0.30, 0.55),
    "week_8_active": (0.15, 0.35),
    "dropout_day_7": (0.12, 0.32),
    "gone_by_week_5_no_support": (0.45, 0.75),
    "gone_by_week_5_support": (0.15, 0.40),
    "support_ratio": (0.25, 0.55),
}


@pytest.fixture(scope="module")
def big():
    """A cohort large enough for stable effect signs and base rates."""
    return simulate(EFFECTS)


def event_days(cohort, events: pd.DataFrame) -> np.ndarray:
    """Whole days since the patient's enrolment of each event."""
    enrolled = events["patient_id"].map(cohort.patients.set_index("patient_id")["enrolled_at"])
    return ((events["timestamp"] - enrolled) // DAY).to_numpy()


def own_use(cohort) -> pd.DataFrame:
    """Own-engagement events with their day since enrolment."""
    own = cohort.events[cohort.events["event_type"].isin(OWN)]
    return own.assign(day=event_days(cohort, own))


def observed_days(cohort) -> pd.Series:
    """Whole days each patient is observed for, by patient_id."""
    patients = cohort.patients.set_index("patient_id")
    return (cohort.data_end - patients["enrolled_at"]) // DAY


def active_share(cohort, own: pd.DataFrame, first: int, last: int) -> float:
    """Share of patients observed through day `last` with own engagement in days first..last."""
    seen = observed_days(cohort)
    population = seen.index[seen > last]
    users = own.loc[(own["day"] >= first) & (own["day"] <= last), "patient_id"].unique()
    return float(population.isin(users).mean())


# --- determinism and the contract -----------------------------------------------------------


def test_same_seed_gives_identical_tables_and_another_seed_does_not():
    a, b = simulate(TINY), simulate(TINY)
    for x, y in zip(a[:3], b[:3]):
        pd.testing.assert_frame_equal(x, y)
    assert a.data_end == b.data_end
    other = simulate(replace(TINY, seed=4))
    assert len(other.events) != len(a.events) or not other.events.equals(a.events)
    assert not other.truth["activity_base"].equals(a.truth["activity_base"])


def test_written_folder_passes_the_data_contract(sim_data_dir, sim_cohort):
    cohort = load_cohort(sim_data_dir)
    assert len(cohort.patients) == len(sim_cohort.patients)
    assert len(cohort.events) == len(sim_cohort.events)
    meta = json.loads((sim_data_dir / "meta.json").read_text())
    assert pd.Timestamp(meta["data_end"]) == sim_cohort.data_end
    assert meta["seed"] == 11 and meta["n_patients"] == 1_500 and meta["days"] == 90
    assert (sim_data_dir / "truth.parquet").is_file()


def test_written_true_probabilities_are_the_simulators_for_the_default_days_and_definitions(sim_data_dir,
                                                                                             sim_cohort):
    table = pd.read_parquet(sim_data_dir / "true_probability.parquet")
    assert list(table.columns) == ["patient_id", "as_of_day", "definition", "horizon_days", "probability"]
    assert set(table["as_of_day"]) == set(FeatureConfig().as_of_days)
    assert set(table["definition"]) == {"either", "inactivity", "discontinuation"}
    assert set(table["horizon_days"]) == {LabelConfig().horizon_days}
    assert not table.duplicated(["patient_id", "as_of_day", "definition"]).any()
    for definition in ("inactivity", "discontinuation"):
        rows = table[table["definition"] == definition].reset_index(drop=True)
        expected = true_dropout_probability(sim_cohort.truth, rows[["patient_id", "as_of_day"]],
                                            LabelConfig(definition=definition))
        assert np.array_equal(rows["probability"].to_numpy(), expected)
    # Every patient at every default day that was simulated for them, and no other day.
    simulated = sim_cohort.truth.set_index("patient_id")["simulated_days"]
    per_patient = table[table["definition"] == "either"].groupby("patient_id")["as_of_day"].count()
    expected_days = simulated.map(lambda n: sum(d <= n for d in FeatureConfig().as_of_days))
    assert per_patient.reindex(simulated.index, fill_value=0).equals(expected_days.astype(per_patient.dtype))


def test_tables_have_the_canonical_columns_and_types(sim_cohort):
    patients, events = sim_cohort.patients, sim_cohort.events
    assert [c.name for c in PATIENT_COLUMNS] == list(patients.columns)
    assert [c.name for c in EVENT_COLUMNS] == list(events.columns)
    assert str(patients["enrolled_at"].dtype) == "datetime64[us, UTC]"
    assert str(events["timestamp"].dtype) == "datetime64[us, UTC]"
    assert events["value"].dtype == np.float64
    for column in ("patient_id", "sex", "education", "program", "site", "referral_source"):
        assert patients[column].dtype == "str", column
    assert events["patient_id"].dtype == "str" and events["event_type"].dtype == "str"
    for col in PATIENT_COLUMNS:
        values = patients[col.name]
        if col.categories:
            assert set(values) <= set(col.categories), col.name
        if col.low is not None:
            assert values.min() >= col.low and values.max() <= col.high, col.name
    assert patients["program"].nunique() == 3 and patients["patient_id"].is_unique


def test_event_values_follow_the_value_rules(sim_cohort):
    events = sim_cohort.events
    assert set(events["event_type"]) == {str(t) for t in VALUE_RULES}
    for kind, rule in VALUE_RULES.items():
        values = events.loc[events["event_type"] == str(kind), "value"]
        present = values.dropna()
        if rule.required:
            assert len(present) == len(values), kind
        if rule.low is not None:
            assert present.between(rule.low, rule.high).all(), kind
        if rule.integer:
            assert (present == present.round()).all(), kind
    modules = events.loc[events["event_type"] == "module_completed"]
    # Module numbers follow the pace: at most one new module per week, counted from 1.
    week = event_days(sim_cohort, modules) // 7
    assert (modules["value"] <= week + 1).all() and modules["value"].min() == 1


def test_timestamps_fall_strictly_inside_a_simulated_day_and_before_data_end(sim_cohort):
    events = sim_cohort.events
    enrolled = events["patient_id"].map(sim_cohort.patients.set_index("patient_id")["enrolled_at"])
    since = events["timestamp"] - enrolled
    assert (since > pd.Timedelta(0)).all()
    assert (since % DAY != pd.Timedelta(0)).all()
    assert (events["timestamp"] < sim_cohort.data_end).all()
    assert sim_cohort.data_end < pd.Timestamp("2026-12-01", tz="UTC")
    # Enrolment is spread over the window, leaving everyone a few weeks of observation.
    seen = observed_days(sim_cohort)
    assert seen.min() >= 21 and seen.max() - seen.min() > 45


def test_coach_and_reminder_events_only_where_the_program_has_them(sim_cohort):
    patients = sim_cohort.patients.set_index("patient_id")
    kinds = sim_cohort.events.groupby("event_type")["patient_id"].unique()
    for kind, flag in (("message_from_coach", "human_support"), ("message_to_coach", "human_support"),
                       ("reminder_sent", "reminders"), ("reminder_opened", "reminders")):
        assert patients.loc[kinds[kind], flag].all(), kind
        assert patients.loc[patients[flag]].index.isin(kinds[kind]).mean() > 0.5, kind
    # Nothing of the patient's own after a discontinuation, and no coach or reminder either.
    events = sim_cohort.events
    exit_at = events[events["event_type"] == "discontinued"].groupby("patient_id")["timestamp"].min()
    after = events["timestamp"] > events["patient_id"].map(exit_at)
    assert after.sum() == 0
    assert patients.loc[kinds["discontinued"]].index.is_unique


# --- published effect directions and base rates ---------------------------------------------


def test_day_28_dropout_has_the_published_effect_signs(big):
    from sklearn.linear_model import LogisticRegression

    own, patients = own_use(big), big.patients
    used = own.loc[own["day"].between(28, 41), "patient_id"].unique()
    exits = big.events[big.events["event_type"] == "discontinued"]
    left = exits["patient_id"][event_days(big, exits) <= 41].unique()
    dropout = (~patients["patient_id"].isin(used) | patients["patient_id"].isin(left)).astype(int)
    x = pd.DataFrame({
        "male": patients["sex"] == "male",
        "primary_education": patients["education"] == "primary",
        "comorbid_anxiety": patients["baseline_gad7"] >= GAD7_ANXIETY_CUTOFF,
        "age_per_4_years": patients["age"].astype(float) / 4.0,
        "human_support": patients["human_support"],
        "reminders": patients["reminders"],
        "incentives": patients["incentives"],
        "gamification": patients["gamification"],
        "baseline_phq9": patients["baseline_phq9"].astype(float),
    }).astype(float)
    fit = LogisticRegression(C=1e6, max_iter=5000).fit(x, dropout)
    coef = dict(zip(x.columns, fit.coef_[0]))
    for name in ("male", "primary_education", "comorbid_anxiety", "baseline_phq9"):
        assert coef[name] > 0, (name, coef[name])
    for name in ("age_per_4_years", "human_support", "reminders", "incentives"):
        assert coef[name] < 0, (name, coef[name])
    assert abs(coef["gamification"]) < 0.1
    # Guidance is by far the strongest lever (dropout 11.7% vs 34%).
    assert coef["human_support"] < -0.8


def test_default_base_rates_fall_in_the_documented_ranges(big):
    own = own_use(big)
    rates = {
        "uptake": active_share(big, own, 0, 13),
        "week_4_active": active_share(big, own, 21, 27),
        "week_8_active": active_share(big, own, 49, 55),
    }
    snaps = snapshot_times(big.patients, [7])
    labels = compute_labels(big.events, snaps, big.data_end)
    rates["dropout_day_7"] = labels.loc[labels["eligible"] & ~labels["censored"], "dropout"].mean()

    # Everyone here is observed for 45+ days: who used it in week 1 but not in weeks 5-6?
    week_1 = pd.Index(own.loc[own["day"] < 7, "patient_id"].unique())
    stopped = ~week_1.isin(own.loc[own["day"].between(28, 41), "patient_id"].unique())
    support = big.patients.set_index("patient_id").loc[week_1, "human_support"].to_numpy()
    rates["gone_by_week_5_support"] = stopped[support].mean()
    rates["gone_by_week_5_no_support"] = stopped[~support].mean()
    rates["support_ratio"] = rates["gone_by_week_5_support"] / rates["gone_by_week_5_no_support"]
    for name, (low, high) in BASE_RATES.items():
        assert low <= rates[name] <= high, (name, round(rates[name], 3))
    assert set(big.truth["trajectory"]) == {"never_starter", "steady", "early_burst", "slow_fade", "e_attainment"}


# --- true probabilities ----------------------------------------------------------------------


@pytest.mark.parametrize("definition", ["either", "inactivity", "discontinuation"])
def test_true_probability_matches_the_label_rate(big, definition):
    config = LabelConfig(definition=definition)
    snaps = snapshot_times(big.patients, [3, 7, 14, 28])
    labels = compute_labels(big.events, snaps, big.data_end, config)
    keep = (labels["eligible"] & ~labels["censored"]).to_numpy()
    rows = snaps[keep].reset_index(drop=True)
    p = true_dropout_probability(big.truth, rows, config)
    assert ((p >= 0) & (p <= 1)).all()
    observed = labels.loc[keep, "dropout"].to_numpy()
    for day in (3, 7, 14, 28):
        at = rows["as_of_day"].to_numpy() == day
        se = np.sqrt(np.sum(p[at] * (1 - p[at]))) / at.sum()
        assert abs(observed[at].mean() - p[at].mean()) < 4 * se + 0.005, (definition, day)
    # Calibrated across its range too, not just on average.
    bins = np.digitize(p, [0.1, 0.3, 0.6, 0.9])
    for b in np.unique(bins):
        inside = bins == b
        if inside.sum() > 500:
            assert abs(observed[inside].mean() - p[inside].mean()) < 0.03, (definition, b)


def test_true_probability_uses_only_the_state_at_the_as_of_day(sim_cohort):
    d = 10
    snaps = snapshot_times(sim_cohort.patients, [d])[["patient_id", "as_of_day"]]
    p = true_dropout_probability(sim_cohort.truth, snaps, LabelConfig())
    # Erase everything the simulation realised from day d on; the answer must not move.
    truth = sim_cohort.truth
    past_only = truth.assign(
        active_days=truth["active_days"].str.slice(0, d).str.pad(truth["simulated_days"].iloc[0], "right", "0"),
        quit_day=truth["quit_day"].where(truth["quit_day"] < d),
        discontinued=False,
    )
    assert np.array_equal(p, true_dropout_probability(past_only, snaps, LabelConfig()))
    # Who had already quit is certain to be inactive; who has not, is not.
    quit_before = (sim_cohort.truth["quit_day"] < d).to_numpy()
    assert (p[quit_before] == 1).all() and (p[~quit_before] < 1).all()


def test_true_probability_refuses_unknown_patients_and_definitions(sim_cohort):
    snaps = pd.DataFrame({"patient_id": ["nobody"], "as_of_day": [7]})
    with pytest.raises(ValueError, match="not in the truth table"):
        true_dropout_probability(sim_cohort.truth, snaps, LabelConfig())
    with pytest.raises(ValueError, match="definition"):
        true_dropout_probability(sim_cohort.truth, snaps, LabelConfig(definition="sometimes"))


# --- the command ----------------------------------------------------------------------------


def test_cli_writes_the_folder_refuses_to_overwrite_and_replaces_with_force(tmp_path: Path):
    out = tmp_path / "cohort"
    command = [sys.executable, "-m", "cli", "simulate", "--patients", "200", "--days", "30", "--seed", "9",
               "--out", str(out)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert {p.name for p in out.iterdir()} == {"patients.parquet", "events.parquet", "truth.parquet",
                                               "true_probability.parquet", "meta.json", "lapse.toml"}
    assert "200 patients" in done.stdout
    meta = json.loads((out / "meta.json").read_text())
    assert meta["seed"] == 9 and meta["days"] == 30 and meta["parameters"]["n_patients"] == 200
    before = (out / "events.parquet").stat().st_mtime_ns

    again = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "not empty" in again.stderr
    assert (out / "events.parquet").stat().st_mtime_ns == before

    from cli.main import main

    assert main(["simulate", "--patients", "150", "--days", "30", "--seed", "9", "--out", str(out), "--force"]) == 0
    assert len(pd.read_parquet(out / "patients.parquet")) == 150
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
