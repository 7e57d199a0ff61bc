"""One patient at a time (serving's case, and compute_features_one on arrays) gives the batch rows, edge cases included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from config import FeatureConfig, ProgramConfig
from features.catalog import feature_names
from features.event_index import TYPES, micros
from features.point_in_time import compute_features, compute_features_one

E0 = pd.Timestamp("2025-03-01T00:00:00Z")
DAY_US = 86_400_000_000
HOUR_US = 3_600_000_000


def awkward_cohort(n_patients: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Patients whose events sit on a coarse grid (many ties), in no order, with missing values,
    a type outside the vocabulary, and some patients with no events at all."""
    rng = np.random.default_rng(seed)
    ids = [f"q{i:03d}" for i in range(n_patients)]
    enrolled = E0 + pd.to_timedelta(rng.integers(0, 5, n_patients) * 6, unit="h")
    patients = pd.DataFrame({
        "patient_id": pd.array(ids, dtype="str"),
        "enrolled_at": pd.Series(enrolled).dt.as_unit("us"),
        "baseline_phq9": pd.array(rng.choice([np.nan, 4, 15], n_patients), dtype="float64"),
        "baseline_gad7": pd.array(rng.choice([np.nan, 3, 12], n_patients), dtype="float64"),
    })
    n_events = rng.integers(0, 120, n_patients)
    n_events[: max(1, n_patients // 10)] = 0  # no events at all
    owner = np.repeat(np.arange(n_patients), n_events)
    # Half-day steps over six weeks, a few just before enrolment: lots of exact ties.
    offset = rng.integers(-1, 84, len(owner)) * 12 * HOUR_US
    types = np.array([*TYPES, "jogging"])[rng.integers(0, len(TYPES) + 1, len(owner))]
    values = np.round(rng.uniform(0, 27, len(owner)))
    values[rng.random(len(owner)) < 0.2] = np.nan  # sessions without duration, empty optional values
    events = pd.DataFrame({
        "patient_id": pd.array(np.array(ids, dtype=object)[owner], dtype="str"),
        "timestamp": pd.Series(pd.to_datetime(micros(patients["enrolled_at"], "e")[owner] + offset, unit="us",
                                              utc=True)),
        "event_type": pd.array(types, dtype="str"),
        "value": values,
    })
    return patients, events.sample(frac=1.0, random_state=seed, ignore_index=True)


def as_of_rows(patients: pd.DataFrame, events: pd.DataFrame, seed: int) -> pd.DataFrame:
    """Per patient: at enrolment, before it, exactly at an event (a tie at T), an event time plus whole
    days (window edges), after every event, and at random times."""
    rng = np.random.default_rng(seed)
    rows = []
    stamps = events.groupby("patient_id")["timestamp"]
    for pid, enrolled in zip(patients["patient_id"], patients["enrolled_at"]):
        mine = stamps.get_group(pid) if pid in stamps.groups else pd.Series([], dtype=events["timestamp"].dtype)
        times = [enrolled, enrolled - pd.Timedelta(hours=1), enrolled + pd.Timedelta(days=60)]
        if len(mine):
            at = mine.iloc[rng.integers(0, len(mine))]
            times += [at, at + pd.Timedelta(days=int(rng.choice([3, 7, 14]))), mine.max()]
        times += list(enrolled + pd.to_timedelta(rng.integers(0, 45 * DAY_US, 2), unit="us"))
        rows += [(pid, t) for t in times]
    frame = pd.DataFrame(rows, columns=["patient_id", "as_of"])
    frame["patient_id"] = frame["patient_id"].astype("str")
    frame["as_of"] = pd.to_datetime(frame["as_of"], utc=True).dt.as_unit("us")
    return frame


@pytest.mark.parametrize("config", [FeatureConfig(), FeatureConfig(windows_days=(2, 5), recent_share_days=2,
                                                                   program=ProgramConfig(core_modules=3))],
                         ids=["default", "other-windows"])
def test_fast_path_equals_batch_path_on_many_awkward_patients(config):
    patients, events = awkward_cohort(150, seed=21)
    as_of = as_of_rows(patients, events, seed=22)
    batch = compute_features(patients, events, as_of, config).iloc[:, 2:].to_numpy()
    assert len(as_of) > 900 and np.isnan(batch).any()
    by_patient = {pid: group for pid, group in events.groupby("patient_id")}
    no_events = events.iloc[:0]
    row_of = {pid: i for i, pid in enumerate(patients["patient_id"])}
    for i, (pid, t) in enumerate(zip(as_of["patient_id"], as_of["as_of"])):
        mine = by_patient.get(pid, no_events)
        one = compute_features_one(patients.iloc[[row_of[pid]]], micros(mine["timestamp"], "timestamp"),
                                   mine["event_type"].to_numpy(), mine["value"].to_numpy(),
                                   int(micros(as_of["as_of"].iloc[[i]], "as_of")[0]), config)
        assert np.array_equal(one, batch[i], equal_nan=True), (i, np.flatnonzero(~((one == batch[i]) | (
            np.isnan(one) & np.isnan(batch[i])))))
        if i % 7 == 0:  # a one-row table goes the same fast way
            single = compute_features(patients, events, as_of.iloc[[i]], config).iloc[0, 2:].to_numpy(float)
            assert np.array_equal(single, batch[i], equal_nan=True), i


def test_fast_path_edge_cases_by_hand():
    patients = pd.DataFrame({"patient_id": pd.array(["A"], dtype="str"),
                             "enrolled_at": pd.Series([E0]).dt.as_unit("us"), "baseline_phq9": [10.0]})
    t0 = int(micros(patients["enrolled_at"], "e")[0])
    at = lambda days, hours=0: t0 + days * DAY_US + hours * HOUR_US  # noqa: E731
    names = feature_names()

    def one(times, types, values, as_of):
        return dict(zip(names, compute_features_one(patients, np.array(times, dtype=np.int64), types,
                                                    np.array(values, dtype=float), as_of)))

    empty = one([], [], [], at(5))
    assert empty["sessions_total"] == 0 and empty["days_since_last_session"] == 5.0
    assert np.isnan(empty["latest_mood"]) and np.isnan(empty["reply_latency_hours"])
    # Two check-ins at the same instant: the later one in the input is the latest, as in the batch path.
    tied = one([at(1), at(1), at(2)], ["mood_checkin", "mood_checkin", "session"], [3.0, 8.0, np.nan], at(2))
    assert tied["latest_mood"] == 8.0 and tied["mood_change_since_first"] == 5.0
    assert tied["sessions_total"] == 1 and np.isnan(tied["minutes_total"])  # duration unknown, not zero
    # Events after T and types outside the vocabulary change nothing; names or codes both work.
    later = one([at(1), at(1), at(2), at(9), at(3)], ["mood_checkin", "mood_checkin", "session", "session", "jogging"],
                [3.0, 8.0, np.nan, 30.0, 1.0], at(2))
    assert later == tied or all(np.isnan(v) and np.isnan(tied[k]) or v == tied[k] for k, v in later.items())
    codes = one([at(1), at(1), at(2)], np.array([TYPES.index("mood_checkin")] * 2 + [0]), [3.0, 8.0, np.nan], at(2))
    assert all(np.isnan(v) and np.isnan(tied[k]) or v == tied[k] for k, v in codes.items())
    with pytest.raises(ValueError, match="differ in length"):
        one([at(1)], ["session", "session"], [1.0], at(2))
    with pytest.raises(ValueError, match="one-row patients table"):
        compute_features_one(pd.concat([patients, patients]), np.array([], dtype=np.int64), [], [], at(1))


def test_a_patient_given_as_values_gives_the_tables_row():
    """Serving's raw path passes the profile as name -> value (no one-row DataFrame): every feature must be
    the one the one-row table gives, whatever the profile holds, misses or spells oddly."""
    from simulation import simulate
    from simulation.settings import SimulationConfig

    cohort = simulate(SimulationConfig(n_patients=60, days=40, seed=11))
    patients, events = cohort.patients.copy(), cohort.events
    rng = np.random.default_rng(3)
    for name in ("age", "sex", "education", "baseline_gad7", "human_support", "referral_source"):
        patients[name] = patients[name].astype(object)
        patients.loc[rng.random(len(patients)) < 0.25, name] = None  # not known for some
    patients.loc[::3, "sex"] = patients.loc[::3, "sex"].map(lambda v: v if v is None else f"  {v.upper()} ")
    by_patient = {pid: group for pid, group in events.groupby("patient_id")}
    compared = 0
    for i in range(len(patients)):
        table = patients.iloc[[i]].reset_index(drop=True)
        values = {k: v for k, v in table.iloc[0].items() if v is not None and not (isinstance(v, float) and np.isnan(v))}
        mine = by_patient.get(table["patient_id"].iloc[0], events.iloc[:0])
        args = (micros(mine["timestamp"], "t"), mine["event_type"].to_numpy(), mine["value"].to_numpy(float),
                int(micros(table["enrolled_at"], "e")[0]) + 20 * DAY_US)
        from_table, from_values = compute_features_one(table, *args), compute_features_one(values, *args)
        assert np.array_equal(from_values, from_table, equal_nan=True), (i, np.flatnonzero(from_values != from_table))
        compared += 1
    assert compared == 60
    names = feature_names()
    male = names.index("male")
    odd = {"enrolled_at": E0.to_pydatetime(), "sex": "  MALE "}
    assert compute_features_one(odd, np.array([], dtype=np.int64), [], [], int(micros(pd.Series([E0]), "e")[0]))[male] == 1.0
    with pytest.raises(ValueError, match="enrolled_at"):
        compute_features_one({"sex": "male"}, np.array([], dtype=np.int64), [], [], 0)
    with pytest.raises(ValueError, match="timezone-aware"):
        compute_features_one({"enrolled_at": E0.tz_localize(None)}, np.array([], dtype=np.int64), [], [], 0)


def _patients_of_every_kind(n: int, seed: int) -> list[pd.DataFrame]:
    """One patients table in several spellings of its columns: numpy and nullable numbers with missing values,
    numbers as text, Arrow numbers, booleans as objects and nullable, text as objects and categories with odd
    spelling and missing values, and covariate columns left out."""
    from simulation import simulate
    from simulation.settings import SimulationConfig

    base = simulate(SimulationConfig(n_patients=n, days=20, seed=seed)).patients
    rng = np.random.default_rng(seed)
    gaps = lambda: rng.random(n) < 0.25  # noqa: E731
    nullable = base.copy()
    for name in ("age", "baseline_phq9", "baseline_gad7"):
        nullable[name] = nullable[name].astype("Int64")
        nullable.loc[gaps(), name] = pd.NA
    nullable["baseline_gad7"] = nullable["baseline_gad7"].astype("Float64")
    nullable["human_support"] = nullable["human_support"].astype("boolean")
    nullable.loc[gaps(), "human_support"] = pd.NA
    numpy_numbers = base.astype({"age": "float64", "baseline_phq9": "int64", "baseline_gad7": "float32"})
    numpy_numbers.loc[gaps(), "age"] = np.nan
    odd = base.copy()
    odd["sex"] = odd["sex"].astype(object)
    odd.loc[gaps(), "sex"] = None
    odd.loc[::3, "sex"] = odd.loc[::3, "sex"].map(lambda v: v if v is None else f"  {v.upper()} ")
    odd["education"] = odd["education"].astype("category")
    odd["referral_source"] = odd["referral_source"].astype(object)
    odd.loc[gaps(), "referral_source"] = np.nan
    odd["baseline_phq9"] = odd["baseline_phq9"].astype(str)
    odd["age"] = odd["age"].astype("int32[pyarrow]")
    odd["reminders"] = odd["reminders"].astype(object)
    odd.loc[gaps(), "reminders"] = None
    missing = base.drop(columns=["sex", "gamification", "age", "referral_source"])
    return [base, nullable, numpy_numbers, odd, missing]


def test_a_one_row_tables_covariates_are_the_many_row_tables():
    """One patient in a table has its covariates worked out value by value in Python (covariate_block's fast
    path): every one must be, bit for bit, what the array path gives that patient among many."""
    from features.covariates import COVARIATES, covariate_block, encode_covariates

    for kind, patients in enumerate(_patients_of_every_kind(40, seed=4)):
        many = covariate_block(patients)
        assert many.shape == (len(COVARIATES), len(patients))
        assert np.isnan(many).any() or kind in (0, 4)
        for i in range(len(patients)):
            one = covariate_block(patients.iloc[[i]].reset_index(drop=True))
            assert one.dtype == np.float64 and one.tobytes() == many[:, [i]].tobytes(), (kind, i)
        arrays = encode_covariates(patients)
        assert list(arrays) == list(COVARIATES)
        assert np.stack(list(arrays.values())).tobytes() == many.tobytes()


def test_one_patient_tables_give_the_batch_rows_bit_for_bit():
    """compute_features on one patient's tables (one patient, their events, one as-of row; serving's case) against
    the same rows computed in one batch: equal to the bit, NaNs included, with every kind of patients table, with
    no events, and with other patients' events and missing ids in the events table."""
    for kind, patients in enumerate(_patients_of_every_kind(30, seed=6)):
        awkward, events = awkward_cohort(len(patients), seed=kind)
        patients = patients.assign(patient_id=awkward["patient_id"], enrolled_at=awkward["enrolled_at"])
        as_of = as_of_rows(patients, events, seed=kind)
        batch = compute_features(patients, events, as_of).iloc[:, 2:].to_numpy()
        stray = events.iloc[:3].assign(patient_id=pd.array(["nobody", None, "q999"], dtype="str"))
        for i in range(0, len(as_of), 3):
            pid = as_of["patient_id"].iloc[i]
            one = patients[patients["patient_id"] == pid].reset_index(drop=True)
            own = events[events["patient_id"] == pid].reset_index(drop=True)
            for table in (own, pd.concat([stray, own, stray], ignore_index=True)):
                row = compute_features(one, table, as_of.iloc[[i]].reset_index(drop=True)).iloc[0, 2:]
                assert row.to_numpy(float).tobytes() == batch[i].tobytes(), (kind, i)
