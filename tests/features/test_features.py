"""Point-in-time features: catalog, hand-computed values, batch/single parity, no leakage, errors, command."""

from __future__ import annotations

import json
import math
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from cli.main import main
from config import FeatureConfig
from simulation.settings import SimulationConfig
from features import event_index
from features.catalog import FEATURES, LEVELS, build_features, feature_names, features_at_level, spec
from features.point_in_time import compute_features, specs_for
from features.snapshots import snapshot_times

DAY = pd.Timedelta(days=1)
HOUR = pd.Timedelta(hours=1)
E0 = pd.Timestamp("2025-01-01T00:00:00Z")


# --- a tiny hand-written cohort --------------------------------------------------------------

def hand_patients() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": pd.array(["A", "B", "C"], dtype="str"),
        "enrolled_at": pd.to_datetime([E0, E0 + DAY + 6 * HOUR, E0], utc=True).as_unit("us"),
        "age": pd.array([40, 29, 51], dtype="Int64"),
        "sex": pd.array(["male", "unknown", "female"], dtype="str"),
        "education": pd.array(["primary", "tertiary", "secondary"], dtype="str"),
        "race_ethnicity": pd.array(["white", "asian", "black"], dtype="str"),
        "baseline_phq9": pd.array([15, 9, 20], dtype="Int64"),
        "baseline_gad7": pd.array([12, None, 4], dtype="Int64"),
        "human_support": [True, False, True],
        "gamification": [False, True, False],
        "incentives": [False, False, True],
        "reminders": [True, False, False],
        "referral_source": pd.array(["gp", "website", None], dtype="str"),
    })


def hand_events() -> pd.DataFrame:
    d = lambda days, hours=0.0: E0 + days * DAY + pd.Timedelta(hours=hours)  # noqa: E731
    rows = [
        ("A", d(0, 10), "session", 10.0), ("A", d(0, 11), "mood_checkin", 6.0),
        ("A", d(1, 9), "session", 20.0), ("A", d(1, 9.5), "module_completed", 1.0),
        ("A", d(3, 8), "session", 5.5), ("A", d(3, 12), "mood_checkin", 4.0),
        ("A", d(3, 13), "message_from_coach", np.nan), ("A", d(4, 7), "message_to_coach", np.nan),
        ("A", d(4, 8), "reminder_sent", np.nan), ("A", d(4, 9), "reminder_opened", np.nan),
        ("A", d(5, 10), "phq9", 12.0),
        ("A", d(8, 1), "session", 30.0),  # after A's as-of time: must never count
        ("C", d(3, 6), "session", 4.0), ("C", d(3, 18), "exercise_completed", np.nan),
        ("C", d(7, 12), "exercise_completed", np.nan),  # exactly T - 3 days: outside the 3-day window
        ("C", d(10, 12), "session", 1.0),  # exactly at T: counts
        ("C", d(10, 12) + pd.Timedelta(microseconds=1), "session", 7.0),  # just after T: never counts
    ]
    frame = pd.DataFrame(rows, columns=["patient_id", "timestamp", "event_type", "value"])
    frame["patient_id"] = frame["patient_id"].astype("str")
    frame["event_type"] = frame["event_type"].astype("str")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"], utc=True).dt.as_unit("us")
    # Shuffled on purpose: events are not necessarily sorted.
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def hand_as_of() -> pd.DataFrame:
    b_enrolled = E0 + DAY + 6 * HOUR
    return pd.DataFrame({
        "patient_id": pd.array(["A", "B", "C", "B"], dtype="str"),
        "as_of": pd.to_datetime([E0 + 7 * DAY, b_enrolled + 3 * DAY, E0 + 10 * DAY + 12 * HOUR, b_enrolled],
                                utc=True).as_unit("us"),
    })


@pytest.fixture(scope="module")
def hand() -> pd.DataFrame:
    return compute_features(hand_patients(), hand_events(), hand_as_of()).set_index(
        pd.Index(["A7", "B3", "C10", "B0"]))


def test_hand_computed_usage_features_of_an_active_patient(hand):
    a = hand.loc["A7"]
    assert a["days_since_enrolment"] == 7.0
    assert a["days_since_last_engagement"] == pytest.approx(38 / 24)
    assert a["days_since_last_session"] == pytest.approx(88 / 24)
    assert a["days_since_last_module"] == pytest.approx(134.5 / 24)
    assert (a["sessions_3d"], a["sessions_7d"], a["sessions_14d"], a["sessions_total"]) == (0, 3, 3, 3)
    assert (a["active_days_3d"], a["active_days_7d"], a["active_days_total"]) == (2, 5, 5)
    assert (a["minutes_3d"], a["minutes_7d"], a["minutes_total"]) == (0.0, 35.5, 35.5)
    assert (a["modules_7d"], a["checkins_3d"], a["checkins_7d"], a["exercises_total"]) == (1, 0, 2, 0)
    assert a["modules_vs_pace"] == 1.0 and a["sessions_vs_recommended"] == 1.0
    assert a["sessions_7d_vs_recommended"] == 1.0 and a["core_modules_share"] == 1 / 8
    # Daily own-engagement counts, days back 0..6: 0,1,1,2,0,2,2 -> least-squares slope -0.25 a day.
    assert a["activity_slope_14d"] == -0.25
    assert (a["current_streak_days"], a["longest_streak_days"]) == (0, 3)
    assert a["active_day_share"] == 5 / 7
    assert a["gap_days_sd"] == pytest.approx(math.sqrt(0.1875))  # gaps 1, 2, 1, 1
    assert a["recent_activity_share"] == 2 / 8


def test_hand_computed_clinical_support_and_baseline_features(hand):
    a = hand.loc["A7"]
    assert a["latest_mood"] == 4.0 and a["mood_change_since_first"] == -2.0
    assert a["mood_trend_14d"] == pytest.approx(-2.0 / (3 + 1 / 24) * 7)
    assert a["latest_phq9"] == 12.0 and a["phq9_change"] == -3.0
    assert np.isnan(a["gad7_change"])
    assert (a["coach_messages_7d"], a["messages_to_coach_total"], a["unanswered_coach_messages"]) == (1, 1, 0)
    assert a["reply_latency_hours"] == pytest.approx(18.0)
    assert a["reminders_sent_7d"] == 1 and a["reminder_open_rate"] == 1.0
    assert (a["age"], a["male"], a["education_primary"], a["education_tertiary"]) == (40, 1, 1, 0)
    assert (a["baseline_phq9"], a["baseline_gad7"], a["comorbid_anxiety"]) == (15, 12, 1)
    assert (a["human_support"], a["gamification"], a["incentives"], a["reminders_enabled"]) == (1, 0, 0, 1)
    assert (a["referral_self"], a["referral_gp"], a["referral_employer"], a["referral_clinician"]) == (0, 1, 0, 0)


def test_a_patient_without_events_gets_clear_values(hand):
    b = hand.loc["B3"]
    # Never-happened recency is the days since enrolment; counts are zero; ratios of nothing are NaN.
    assert b["days_since_last_session"] == 3.0 and b["days_since_last_engagement"] == 3.0
    assert b["sessions_total"] == 0 and b["active_days_total"] == 0 and b["minutes_14d"] == 0
    assert b["activity_slope_14d"] == 0.0 and b["active_day_share"] == 0.0
    assert b["current_streak_days"] == 0 and b["longest_streak_days"] == 0
    for name in ("gap_days_sd", "recent_activity_share", "latest_mood", "mood_trend_14d", "latest_phq9",
                 "reply_latency_hours", "reminder_open_rate", "baseline_gad7", "comorbid_anxiety", "male"):
        assert np.isnan(b[name]), name
    assert (b["education_tertiary"], b["referral_self"], b["referral_gp"]) == (1, 0, 0)
    # At the moment of enrolment, pace and slope are not yet defined.
    b0 = hand.loc["B0"]
    assert b0["days_since_enrolment"] == 0.0
    assert np.isnan(b0["modules_vs_pace"]) and np.isnan(b0["activity_slope_14d"])
    assert np.isnan(b0["active_day_share"])


def test_window_edges_events_at_t_count_and_windows_are_left_open(hand):
    c = hand.loc["C10"]
    assert c["days_since_last_session"] == 0.0
    assert (c["sessions_7d"], c["sessions_14d"]) == (1, 2)
    assert (c["minutes_7d"], c["minutes_14d"]) == (1.0, 5.0)
    assert (c["exercises_3d"], c["exercises_7d"]) == (0, 2)
    # The 7-day window opens at day 3, 12:00: day 3 counts once (its evening event), then days 7 and 10.
    assert (c["active_days_7d"], c["active_days_total"]) == (3, 3)
    assert (c["current_streak_days"], c["longest_streak_days"]) == (1, 1)
    assert np.isnan(c["referral_gp"])


# --- catalog -----------------------------------------------------------------------------------

def test_catalog_specs_are_complete_and_match_the_columns(hand):
    names = feature_names()
    assert len(names) == len(set(names)) == len(FEATURES)
    assert list(hand.columns) == ["patient_id", "as_of", *names]
    assert all(hand[n].dtype == np.float64 for n in names)
    assert sum(len(features_at_level(level)) for level in LEVELS) == len(names)
    for s in FEATURES:
        assert s.level in LEVELS and s.label and s.unit and s.phrase and s.group and s.description, s.name
        assert isinstance(s.describe(2.0), str) and isinstance(s.describe(float("nan")), str)
    assert not any("race" in n or "ethnic" in n for n in names), "race/ethnicity must not be a model input"
    assert spec("days_since_last_session").describe(9.0) == "No session for 9 days"
    assert spec("sessions_7d").describe(1.0) == "1 session in the last 7 days"
    assert spec("latest_mood").describe(float("nan")) == "No mood check-in yet"
    assert spec("male").describe(0.0) == "Not male"
    with pytest.raises(KeyError):
        spec("no_such_feature")
    with pytest.raises(ValueError):
        features_at_level("galaxy")


def test_other_windows_rename_the_window_features():
    config = FeatureConfig(windows_days=(2, 5))
    names = [s.name for s in build_features(config)]
    assert "sessions_2d" in names and "activity_slope_5d" in names and "sessions_3d" not in names
    out = compute_features(hand_patients(), hand_events(), hand_as_of(), config)
    assert list(out.columns[2:]) == names
    assert out.loc[0, "sessions_5d"] == 1  # A at day 7: only the day-3 session is in (day 2, day 7]


def test_each_call_gets_the_columns_of_its_own_settings():
    """The feature layout of the settings last asked for is kept: other settings, asked for in turn, each still
    get their own columns, and equal settings the same ones."""
    default, other = FeatureConfig(), FeatureConfig(windows_days=(2, 5))
    for config in (default, other, default, FeatureConfig(windows_days=(2, 5)), other, FeatureConfig()):
        names = [s.name for s in build_features(config)]
        assert [s.name for s in specs_for(config)] == names
        assert list(compute_features(hand_patients(), hand_events(), hand_as_of(), config).columns[2:]) == names


# --- parity and leakage on a simulated cohort --------------------------------------------------

@pytest.fixture(scope="module")
def cohort(request):
    """A small simulated cohort: from the shared data-folder fixture when there is one."""
    try:
        data_dir = request.getfixturevalue("sim_data_dir")
    except pytest.FixtureLookupError:
        from simulation import simulate

        sim = simulate(SimulationConfig(n_patients=600, days=60, chunk_patients=600, seed=11))
        return sim.patients, sim.events
    from features.validate import load_cohort

    loaded = load_cohort(data_dir)
    return loaded.patients, loaded.events


def random_as_of(patients: pd.DataFrame, n_per_patient: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    snaps = snapshot_times(patients, [0, 3, 7, 14, 21, 28])[["patient_id", "as_of"]]
    jitter = rng.integers(0, 40 * 86_400_000_000, len(snaps) * n_per_patient // 6 + 1)
    pick = rng.integers(0, len(patients), len(jitter))
    extra = pd.DataFrame({"patient_id": patients["patient_id"].iloc[pick].array,
                          "as_of": (patients["enrolled_at"].iloc[pick] + pd.to_timedelta(jitter, unit="us")).array})
    return pd.concat([snaps, extra], ignore_index=True).sample(frac=1.0, random_state=seed, ignore_index=True)


def test_batch_values_equal_single_patient_values_exactly(cohort):
    patients, events = cohort
    as_of = random_as_of(patients, 6, seed=5)
    batch = compute_features(patients, events, as_of)
    by_patient = dict(tuple(events.groupby("patient_id", sort=False)))
    rng = np.random.default_rng(7)
    checked_active = 0
    for i in rng.choice(len(as_of), 60, replace=False):
        pid = as_of["patient_id"].iloc[i]
        own = by_patient.get(pid, events.iloc[:0])
        single = compute_features(patients[patients["patient_id"] == pid], own, as_of.iloc[[i]])
        assert np.array_equal(single.iloc[0, 2:].to_numpy(float), batch.iloc[i, 2:].to_numpy(float), equal_nan=True)
        checked_active += bool(batch["sessions_total"].iloc[i] > 0)
    assert checked_active > 10  # the sample covered patients with real activity


def test_event_order_and_other_patients_do_not_change_values(cohort):
    patients, events = cohort
    as_of = random_as_of(patients, 3, seed=8)
    base = compute_features(patients, events, as_of)
    shuffled = events.sample(frac=1.0, random_state=1, ignore_index=True)
    assert np.array_equal(compute_features(patients, shuffled, as_of).iloc[:, 2:].to_numpy(),
                          base.iloc[:, 2:].to_numpy(), equal_nan=True)
    half = patients.iloc[::2]
    mine = as_of[as_of["patient_id"].isin(half["patient_id"])]
    sub = compute_features(half, events[events["patient_id"].isin(half["patient_id"])], mine)
    assert np.array_equal(sub.iloc[:, 2:].to_numpy(), base.loc[mine.index].iloc[:, 2:].to_numpy(), equal_nan=True)


def test_patients_split_into_key_chunks_give_the_same_values(cohort, monkeypatch):
    patients, events = cohort
    as_of = random_as_of(patients, 2, seed=9)
    base = compute_features(patients, events, as_of)
    span = int((events["timestamp"].max() - events["timestamp"].min()) / pd.Timedelta(microseconds=1)) + 2
    monkeypatch.setattr(event_index, "_KEY_LIMIT", span * 97)  # forces chunks of 97 patients
    assert len(event_index.patient_chunks(len(patients), np.zeros(2, np.int64),
                                          np.array([0, span - 2], np.int64))) > 1
    chunked = compute_features(patients, events, as_of)
    assert np.array_equal(chunked.iloc[:, 2:].to_numpy(), base.iloc[:, 2:].to_numpy(), equal_nan=True)


def test_every_type_searched_at_once_finds_what_each_stream_finds(cohort, monkeypatch):
    patients, events = cohort
    busiest = events["patient_id"].value_counts().index[0]
    mine = events[events["patient_id"] == busiest]
    args = (np.zeros(len(mine), dtype=np.int64), event_index.micros(mine["timestamp"], "timestamp"),
            event_index.type_codes(mine["event_type"]), np.zeros(len(mine)), 1)
    ix = event_index.EventIndex(*args)  # one patient's index, as compute_features_one builds it
    keys = ix.streams["session"].key
    queries = np.concatenate([[0, 1, ix.span - 2, ix.span - 1], keys, keys - 1, keys + 1,
                              np.random.default_rng(3).integers(0, ix.span, 300)])
    queries = queries[:len(queries) // 2 * 2].reshape(2, -1)  # rows of queries, as RowWindows asks
    found = ix.type_bounds(queries)
    assert found is not None and len(ix.type_of) == len(event_index.TYPES) and len(keys) > 5
    for name, t in ix.type_of.items():
        np.testing.assert_array_equal(found[t], ix.streams[name].key.searchsorted(queries, side="right"), name)
    # Many patients, or keys that would not fit in one array: each stream is searched on its own.
    codes = event_index.encode(events["patient_id"], patients["patient_id"])
    assert event_index.EventIndex(codes, event_index.micros(events["timestamp"], "timestamp"),
                                  event_index.type_codes(events["event_type"]), np.zeros(len(events)),
                                  len(patients)).type_bounds(queries) is None
    monkeypatch.setattr(event_index, "_KEY_LIMIT", ix.span * 2)
    assert event_index.EventIndex(*args).type_bounds(queries) is None


def test_events_after_the_as_of_time_change_nothing(cohort):
    patients, events = cohort
    as_of = random_as_of(patients, 3, seed=10)
    before = compute_features(patients, events, as_of)
    # For each row's patient, add a burst of every event type just after (and well after) T ...
    rng = np.random.default_rng(4)
    rows = as_of.sample(400, random_state=2)
    types = np.array(list(event_index.TYPES))
    n = len(rows) * 8
    future = pd.DataFrame({
        "patient_id": np.repeat(rows["patient_id"].to_numpy(), 8),
        "timestamp": rows["as_of"].repeat(8).reset_index(drop=True)
        + pd.to_timedelta(rng.integers(1, 20 * 86_400_000_000, n), unit="us"),
        "event_type": types[rng.integers(0, len(types), n)],
        "value": rng.integers(0, 10, n).astype(float),
    })
    future["patient_id"] = future["patient_id"].astype("str")
    future["event_type"] = future["event_type"].astype("str")
    # ... but only rows whose T is before every added event of that patient are comparable.
    first_added = future.groupby("patient_id")["timestamp"].min()
    added = pd.concat([events, future], ignore_index=True)
    after = compute_features(patients, added, as_of)
    first_for_row = as_of["patient_id"].map(first_added)
    safe = (first_for_row.isna() | (as_of["as_of"] < first_for_row)).to_numpy()
    touched = as_of["patient_id"].isin(rows["patient_id"]).to_numpy()
    assert (safe & touched).sum() >= 400 and (~safe).sum() > 100
    assert np.array_equal(after.iloc[:, 2:].to_numpy()[safe], before.iloc[:, 2:].to_numpy()[safe], equal_nan=True)
    # Removing everything after T for a patient changes nothing either.
    row = as_of.iloc[[0]]
    pid, t = row["patient_id"].iloc[0], row["as_of"].iloc[0]
    own = events[events["patient_id"] == pid]
    full = compute_features(patients, own, row)
    cut = compute_features(patients, own[own["timestamp"] <= t], row)
    assert np.array_equal(full.iloc[:, 2:].to_numpy(), cut.iloc[:, 2:].to_numpy(), equal_nan=True)


def test_more_silent_days_never_lower_days_since_last_use(cohort):
    patients, events = cohort
    pid = events["patient_id"].value_counts().index[0]
    last = events.loc[events["patient_id"] == pid, "timestamp"].max()
    as_of = pd.DataFrame({"patient_id": pd.array([pid] * 5, dtype="str"),
                          "as_of": [last + k * DAY for k in range(5)]})
    out = compute_features(patients, events, as_of)
    assert np.allclose(np.diff(out["days_since_last_engagement"]), 1.0, rtol=0, atol=1e-9)
    assert np.all(np.diff(out["sessions_3d"]) <= 0)


# --- bad input -----------------------------------------------------------------------------------

def test_bad_input_gives_clear_errors():
    patients, events, as_of = hand_patients(), hand_events(), hand_as_of()
    unknown = as_of.assign(patient_id=pd.array(["A", "B", "Z", "B"], dtype="str"))
    with pytest.raises(ValueError, match="as_of row 2: patient_id is not in the patients table"):
        compute_features(patients, events, unknown)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_features(patients, events, as_of.assign(as_of=as_of["as_of"].dt.tz_localize(None)))
    with pytest.raises(ValueError, match="events is missing column"):
        compute_features(patients, events.drop(columns="event_type"), as_of)
    # Each table's missing columns are named in order (patients, events, as_of), before a repeated column's error.
    with pytest.raises(ValueError, match=r"^patients is missing column\(s\): enrolled_at$"):
        compute_features(patients.drop(columns="enrolled_at"), events.drop(columns="timestamp"), as_of)
    with pytest.raises(ValueError, match=r"^as_of is missing column\(s\): patient_id, as_of$"):
        compute_features(patients, pd.concat([events, events[["timestamp"]]], axis=1), as_of[[]])
    with pytest.raises(ValueError, match="column 'timestamp' appears more than once"):
        compute_features(patients, pd.concat([events, events[["timestamp"]]], axis=1), as_of)
    with pytest.raises(ValueError, match="not unique"):
        compute_features(pd.concat([patients, patients.iloc[[0]]], ignore_index=True), events, as_of)
    with pytest.raises(ValueError, match="column 'age' appears more than once"):
        compute_features(pd.concat([patients, patients[["age"]]], axis=1), events, as_of)


def test_inputs_are_left_as_they_were_and_the_output_owns_its_data():
    """The tables are read in place (no copy per column): nothing may be written into them, and the
    output's key columns are copies, so editing the output leaves the caller's tables alone."""
    events = hand_events()
    patients = hand_patients().astype({"patient_id": object, "age": "float64"})  # numpy-backed columns
    as_of = hand_as_of().astype({"patient_id": object})
    events["value"] = events["value"].astype("float64")
    kept = patients.copy(deep=True), events.copy(deep=True), as_of.copy(deep=True)
    out = compute_features(patients, events, as_of)
    out.iloc[0, 0], out.iloc[0, 1] = "Z", E0 - 30 * DAY
    out.iloc[0, 2:] = -1.0
    for table, before in zip((patients, events, as_of), kept):
        pd.testing.assert_frame_equal(table, before)


# --- the command ---------------------------------------------------------------------------------

class Done(NamedTuple):
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def lapse(capsys):
    """Run the real `lapse` command line in this process and capture what it prints."""
    def run(*args: str) -> Done:
        capsys.readouterr()
        code = main(list(args))
        out = capsys.readouterr()
        return Done(code, out.out, out.err)
    return run


def test_features_command_writes_the_training_table(tmp_path, lapse):
    data = tmp_path / "data"
    data.mkdir()
    hand_patients().to_parquet(data / "patients.parquet")
    hand_events().to_parquet(data / "events.parquet")
    (data / "meta.json").write_text(json.dumps({"data_end": "2025-02-15T00:00:00+00:00"}))
    out = tmp_path / "features.parquet"
    done = lapse("features", "--data", str(data), "--as-of-days", "3,7", "--horizon", "14", "--out", str(out))
    assert done.returncode == 0, done.stderr
    table = pd.read_parquet(out)
    # A is eligible at days 3 and 7 (and returns on day 8); C first uses it on day 3, so only day 7
    # counts, and C is back on day 7 at noon; B never starts, so B is never eligible.
    assert list(table["patient_id"]) == ["A", "A", "C"] and list(table["as_of_day"]) == [3, 7, 7]
    assert list(table["dropout"]) == [0, 0, 0]
    assert list(table.columns) == ["patient_id", "as_of", "as_of_day", "enrolled_at", *feature_names(), "dropout"]
    assert "3 snapshots of 2 patients" in done.stdout and "35.5" not in done.stdout
    assert not list(tmp_path.glob("**/*.tmp"))


def test_features_command_on_a_bad_folder_exits_2_with_the_contract_report(tmp_path, lapse):
    data = tmp_path / "data"
    data.mkdir()
    (data / "patients.csv").write_text("patient_id,enrolled_at\np1,2025-01-01T00:00:00Z\n")
    (data / "events.csv").write_text("patient_id,timestamp,event_type,value\np1,2025-01-02T00:00:00Z,jogging,\n")
    out = tmp_path / "features.parquet"
    done = lapse("features", "--data", str(data), "--out", str(out))
    assert done.returncode == 2
    assert "event_type" in done.stderr and "row 1" in done.stderr and "Traceback" not in done.stderr
    assert not out.exists()
    done = lapse("features", "--data", str(tmp_path / "missing"), "--out", str(out))
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_docs_list_every_feature_as_the_catalog_generates_it():
    from pathlib import Path

    from features.catalog import catalog_markdown

    text = (Path(__file__).resolve().parents[2] / "docs" / "features.md").read_text()
    block = text.split("<!-- features:begin -->\n")[1].split("<!-- features:end -->")[0]
    assert block == catalog_markdown(), "regenerate with: .venv/bin/python -m features.catalog"


def test_reason_sentences_agree_in_number_with_the_value_they_show():
    from features.catalog import spec

    since = spec("days_since_last_session")
    assert since.describe(0.6) == since.describe(1.0) == "No session for 1 day"
    assert since.describe(1.6).endswith("2 days") and since.describe(9).endswith("9 days")


def test_a_session_without_a_duration_makes_its_windows_minutes_unknown_not_zero():
    events = hand_events()
    # A's day-1 session (in A's 7-day window at day 7, not in its 3-day one) was logged without a duration.
    day1 = (events["patient_id"] == "A") & (events["event_type"] == "session") & (events["value"] == 20.0)
    events.loc[day1, "value"] = np.nan
    out = compute_features(hand_patients(), events, hand_as_of()).set_index(pd.Index(["A7", "B3", "C10", "B0"]))
    a = out.loc["A7"]
    assert a["minutes_3d"] == 0.0
    assert np.isnan(a["minutes_7d"]) and np.isnan(a["minutes_14d"]) and np.isnan(a["minutes_total"])
    assert (a["sessions_7d"], a["sessions_total"]) == (3, 3)  # the session itself still counts
    assert (out.loc["C10", "minutes_7d"], out.loc["B3", "minutes_total"]) == (1.0, 0.0)


def test_one_value_against_one_patient_is_found_as_by_arrows_look_up():
    # A one-row as-of table against a one-patient table is compared in Python, not by Arrow: the same codes.
    for universe in ("P1", "Zoë", "a b", "", "None"):
        for value in ("P1", "P10", "p1", "P1 ", "Zoë", "Zoe", "a b", "", None):
            for values in (pd.Series([value], dtype="str"), np.array([value], dtype=object),
                           pd.Series([value], dtype="category")):
                found = event_index.encode(values, pd.Series([universe], dtype="str"))
                expected = pc.index_in(pa.array([value], type=pa.string()),
                                       value_set=pa.array([universe])).fill_null(-1).to_numpy(zero_copy_only=False)
                assert found.dtype == np.int64 and found.tolist() == expected.tolist(), (value, universe)


def test_one_patients_events_are_found_as_by_arrows_look_up():
    # Against a one-patient universe, events are found by an equality test, all of them at once when every event is
    # that patient's: the same codes as Arrow's look-up, whatever else the column holds, in one chunk or several.
    index_in = lambda values, universe: pc.index_in(pa.array(values, type=pa.string()),  # noqa: E731
                                                    value_set=pa.array(universe)).fill_null(-1).to_numpy()
    for values in (["P1"] * 5, ["P1", "P10", "P1", "p1", "P1"], ["P1", None, "P1"], [None, None], [], ["", "P1"]):
        for universe in (["P1"], ["P1", "P2"], [""]):
            expected = index_in(values, universe).tolist()
            chunked = pa.chunked_array([values[:1], values[1:]], type=pa.large_string())
            for column in (pd.Series(values, dtype="str"), pd.Series(pd.arrays.ArrowStringArray(chunked)),
                           np.array(values, dtype=object)):
                for dtype in (np.int64, np.int8):
                    found = event_index.encode(column, pd.Series(universe, dtype="str"), dtype)
                    assert found.dtype == dtype and found.tolist() == expected, (values, universe, dtype)


def test_type_codes_are_arrows_positions_in_the_vocabulary():
    names = ("session", "mood_checkin", "jogging")
    values = ["session", "jogging", None, "Session", "mood_checkin", "session ", "running"]
    expected = pc.index_in(pa.array(values), value_set=pa.array(names)).fill_null(-1).to_numpy().tolist()
    for column in (pd.Series(values, dtype="str"), pd.Series(values, dtype="category"), values):
        found = event_index.type_codes(column, names)
        assert found.dtype == np.int8 and found.tolist() == expected


def test_the_outputs_block_placements_are_shared_and_stay_as_they_were():
    """Each output frame is built on placement arrays kept per configuration (read-only): editing an output's
    columns (pandas rebuilds its placements) changes neither them nor the next call's output."""
    patients, events, as_of = hand_patients(), hand_events(), hand_as_of()
    first = compute_features(patients, events, as_of)
    kept = first.copy(deep=True)
    out = compute_features(patients, events, as_of)
    out.insert(0, "x", 1.0)
    out["sessions_total"] = -1.0
    del out["age"]
    out = out.drop(columns=["as_of"])
    out["later"] = 2.0
    out.iloc[0, 3] = 7.0
    again = compute_features(patients, events, as_of)
    pd.testing.assert_frame_equal(again, kept)
    pd.testing.assert_frame_equal(first, kept)


def test_a_missing_time_is_named_with_its_row():
    patients, events, as_of = hand_patients(), hand_events(), hand_as_of()
    late = events.assign(timestamp=events["timestamp"].where(events.index != 4))
    with pytest.raises(ValueError, match=r"^events.timestamp has a missing time at row 4$"):
        compute_features(patients, late, as_of)
    with pytest.raises(ValueError, match=r"^as_of.as_of has a missing time at row 0$"):
        compute_features(patients, events, as_of.assign(as_of=as_of["as_of"].where(as_of.index > 0)))
    assert len(compute_features(patients, events.iloc[:0], as_of)) == len(as_of)  # no events: nothing missing
