"""The data contract end to end: `lapse validate` on small hand-written cohorts, good and bad."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from features.contract import (
    EVENT_COLUMNS,
    OWN_ENGAGEMENT,
    PATIENT_COLUMNS,
    EventType,
)
from features.validate import (
    ContractError,
    check_tables,
    load_cohort,
    validate_tables,
)

from cli.main import main

NOW = "2025-06-01T00:00:00Z"
REPO = Path(__file__).resolve().parents[2]

PATIENTS = [
    {"patient_id": "pat-alpha", "enrolled_at": "2025-01-01T09:00:00Z", "age": "34", "sex": "female",
     "education": "tertiary", "baseline_phq9": "12", "baseline_gad7": "8", "human_support": "true",
     "reminders": "yes", "clinic_code": "A"},
    {"patient_id": "pat-bravo", "enrolled_at": "2025-01-02T10:00:00+01:00", "age": "51", "sex": "Male",
     "education": "secondary", "baseline_phq9": "18", "baseline_gad7": "15", "human_support": "0",
     "reminders": "no", "clinic_code": "B"},
    {"patient_id": "pat-charlie", "enrolled_at": "2025-01-03T11:30:00Z", "age": "", "sex": "unknown",
     "education": "", "baseline_phq9": "", "baseline_gad7": "", "human_support": "", "reminders": "",
     "clinic_code": "C"},
]
EVENT_FIELDS = ("patient_id", "timestamp", "event_type", "value", "device")
EVENTS = [
    dict(zip(EVENT_FIELDS, row))
    for row in (
        ("pat-alpha", "2025-01-01T10:00:00Z", "session", "12.5", "ios"),
        ("pat-alpha", "2025-01-02T10:00:00Z", "phq9", "11", "ios"),
        ("pat-alpha", "2025-01-03T10:00:00Z", "mood_checkin", "6", "ios"),
        ("pat-bravo", "2025-01-02T12:00:00+01:00", "session", "30", "android"),
        ("pat-bravo", "2025-01-04T12:00:00Z", "message_from_coach", "", "android"),
        ("pat-bravo", "2025-01-05T12:00:00Z", "discontinued", "", "android"),
        ("pat-charlie", "2025-01-04T12:00:00Z", "module_completed", "1", "web"),
    )
]


def write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def csv_cohort(folder: Path, patients=PATIENTS, events=EVENTS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    write_csv(folder / "patients.csv", patients)
    write_csv(folder / "events.csv", events)
    return folder


def typed_frames() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The same cohort as typed frames, as a Parquet export would hold it (zones other than UTC included)."""
    patients = pd.DataFrame({
        "patient_id": ["pat-alpha", "pat-bravo", "pat-charlie"],
        "enrolled_at": pd.to_datetime(["2025-01-01T10:00:00", "2025-01-02T10:00:00", "2025-01-03T12:30:00"])
        .tz_localize("Europe/Paris"),
        "age": pd.array([34, 51, None], dtype="Int64"),
        "sex": ["female", "male", "unknown"],
        "education": ["tertiary", "secondary", None],
        "baseline_phq9": [12.0, 18.0, np.nan],
        "baseline_gad7": [8.0, 15.0, np.nan],
        "human_support": pd.array([True, False, None], dtype="boolean"),
        "reminders": pd.array([True, False, None], dtype="boolean"),
        "clinic_code": ["A", "B", "C"],
    })
    events = pd.DataFrame({
        "patient_id": [e["patient_id"] for e in EVENTS],
        "timestamp": pd.to_datetime([e["timestamp"] for e in EVENTS], utc=True).tz_convert("America/New_York"),
        "event_type": [e["event_type"] for e in EVENTS],
        "value": [float(e["value"]) if e["value"] else np.nan for e in EVENTS],
        "device": [e["device"] for e in EVENTS],
    })
    return patients, events


def parquet_cohort(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    patients, events = typed_frames()
    patients.to_parquet(folder / "patients.parquet")
    events.to_parquet(folder / "events.parquet")
    return folder


def heading_of(out: str, line: str) -> str:
    """The file heading a report line sits under."""
    lines = out.splitlines()
    at = lines.index(line)
    return next(ln for ln in reversed(lines[:at]) if ln.endswith(":") and not ln.startswith(" "))


def validate(capsys, folder: Path, *extra: str) -> tuple[int, str]:
    code = main(["validate", "--data", str(folder), "--now", NOW, *extra])
    out = capsys.readouterr()
    return code, out.out + out.err


# --- good data --------------------------------------------------------------------------


@pytest.mark.parametrize("make", [csv_cohort, parquet_cohort], ids=["csv", "parquet"])
def test_good_cohort_passes_with_counts(tmp_path, capsys, make):
    code, out = validate(capsys, make(tmp_path / "cohort"))
    assert code == 0, out
    assert "patients: 3" in out
    assert "events:   7" in out
    counts = dict(re.findall(r"^\s+([a-z0-9_]+)\s+(\d+)$", out, flags=re.MULTILINE))
    assert counts["session"] == "2" and counts["phq9"] == "1" and counts["discontinued"] == "1"
    assert counts["gad7"] == "0"
    assert sum(int(v) for v in counts.values()) == 7
    # 2025-01-01T10:00Z to 2025-01-05T12:00Z
    assert "events span 4.1 days (2025-01-01 to 2025-01-05, UTC)" in out
    assert "extra columns carried in patients: clinic_code" in out
    assert "extra columns carried in events: device" in out


def test_csv_and_parquet_load_to_the_same_canonical_cohort(tmp_path):
    from_csv = load_cohort(csv_cohort(tmp_path / "csv"), now=NOW)
    from_parquet = load_cohort(parquet_cohort(tmp_path / "pq"), now=NOW)
    pd.testing.assert_frame_equal(from_csv.events, from_parquet.events)
    pd.testing.assert_frame_equal(from_csv.patients, from_parquet.patients)
    p, e = from_csv
    assert list(p.columns) == [c.name for c in PATIENT_COLUMNS if c.name in p.columns] + ["clinic_code"]
    assert str(p["enrolled_at"].dtype) == "datetime64[us, UTC]"
    assert str(e["timestamp"].dtype) == "datetime64[us, UTC]"
    assert e["value"].dtype == np.float64 and p["age"].dtype == np.float64
    assert e["patient_id"].dtype == "str" and e["event_type"].dtype == "str"
    # Offsets are converted, not dropped: +01:00 10:00 is 09:00 UTC.
    assert p.loc[1, "enrolled_at"] == pd.Timestamp("2025-01-02T09:00:00Z")
    assert p["sex"].tolist() == ["female", "male", "unknown"]
    assert p["human_support"].tolist()[:2] == [True, False] and pd.isna(p.loc[2, "human_support"])
    assert np.isnan(e.loc[4, "value"]) and e.loc[0, "value"] == 12.5
    assert len(e) == len(EVENTS) and len(p) == len(PATIENTS)


def test_extra_columns_are_carried_unchanged(tmp_path):
    cohort = load_cohort(csv_cohort(tmp_path / "c"), now=NOW)
    assert cohort.events["device"].tolist() == [e["device"] for e in EVENTS]
    assert cohort.patients["clinic_code"].tolist() == ["A", "B", "C"]


def test_value_column_may_be_left_out_when_no_event_type_needs_it():
    patients, _ = typed_frames()
    events = pd.DataFrame({"patient_id": ["pat-alpha"], "timestamp": [pd.Timestamp("2025-01-05", tz="UTC")],
                           "event_type": ["reminder_sent"]})
    cohort = validate_tables(patients, events, now=NOW)
    assert list(cohort.events.columns) == [c.name for c in EVENT_COLUMNS]
    assert cohort.events["value"].dtype == np.float64 and cohort.events["value"].isna().all()


# --- bad data, one class at a time ------------------------------------------------------

# (case id, table, 0-based data row or None for the column, column, new cell or None to drop
#  the column, words the message must hold)
BAD_CASES = [
    ("missing-column", "events", None, "event_type", None, "required column is missing"),
    ("empty-required", "events", 1, "patient_id", "", "is empty but required"),
    ("unparseable-timestamp", "events", 2, "timestamp", "2025-02-30T25:61:00Z", "is not a readable timestamp"),
    ("naive-timestamp", "events", 3, "timestamp", "2025-01-02T10:17:43", "has no time zone"),
    ("naive-enrolment", "patients", 1, "enrolled_at", "2025-01-02", "has no time zone"),
    ("unknown-event-type", "events", 4, "event_type", "journaling_xq", "not in lapse's vocabulary"),
    ("unknown-patient", "events", 5, "patient_id", "zz-ghost-17", "names a patient who is not in"),
    ("before-enrolment", "events", 0, "timestamp", "2024-12-25T08:13:00Z", "is before the patient's enrolment"),
    ("future-event", "events", 6, "timestamp", "2025-07-04T10:00:00Z", "is in the future"),
    ("future-enrolment", "patients", 2, "enrolled_at", "2025-09-09T09:09:00Z", "is in the future"),
    ("duplicate-patient", "patients", 2, "patient_id", "pat-alpha", "appears on more than one row"),
    ("mood-out-of-range", "events", 2, "value", "10.75", "mood_checkin values must be a number from 0 to 10"),
    ("phq9-not-whole", "events", 1, "value", "11.5", "phq9 values must be a whole number from 0 to 27"),
    ("mood-value-missing", "events", 2, "value", "", "is required for mood_checkin events"),
    ("module-number-out-of-range", "events", 6, "value", "101", "module_completed values must be a whole number"),
    ("value-not-numeric", "events", 0, "value", "seven-ish", "is not a number"),
    ("age-out-of-range", "patients", 0, "age", "131", "must be a whole number from 12 to 110"),
    ("phq9-baseline-out-of-range", "patients", 1, "baseline_phq9", "28", "must be a whole number from 0 to 27"),
    ("gad7-baseline-not-whole", "patients", 1, "baseline_gad7", "7.25", "must be a whole number from 0 to 21"),
    ("age-not-numeric", "patients", 1, "age", "fifty-one", "is not a number"),
    ("bad-sex", "patients", 0, "sex", "martian", "must be one of female, male, other, unknown"),
    ("bad-education", "patients", 1, "education", "phd-ish", "must be one of primary, secondary, tertiary, unknown"),
    ("bad-boolean", "patients", 0, "human_support", "perhaps", "must be true/false, yes/no or 1/0"),
]


def mutated(table: str, row: int | None, column: str, cell: str | None) -> tuple[list[dict], list[dict]]:
    patients = [dict(r) for r in PATIENTS]
    events = [dict(r) for r in EVENTS]
    rows = patients if table == "patients" else events
    if cell is None:
        for r in rows:
            del r[column]
    else:
        rows[row][column] = cell
    return patients, events


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_each_bad_input_class_exits_2_naming_file_column_and_row(tmp_path, capsys, case):
    _, table, row, column, cell, words = case
    folder = csv_cohort(tmp_path / "c", *mutated(table, row, column, cell))
    code, out = validate(capsys, folder)
    assert code == 2, out
    line = next((ln for ln in out.splitlines() if words in ln), None)
    assert line is not None, out
    assert heading_of(out, line) == f"{folder / f'{table}.csv'}:"
    assert f"column '{column}'" in line
    if row is not None:
        assert re.search(rf"\(rows? (\d+, )*{row + 1}\b", line), line
    if cell and column == "event_type":
        assert f"'{cell}' (1 row)" in line  # an event type is vocabulary: it is named
    elif cell:
        # The value is not repeated (file paths are left out of the check: a temp folder may hold any digits).
        assert cell not in out.replace(str(folder), "")
    assert "Traceback" not in out


def test_the_problem_sits_under_its_own_file(tmp_path, capsys):
    folder = csv_cohort(tmp_path / "c", *mutated("patients", 0, "age", "131"))
    _, out = validate(capsys, folder)
    line = next(ln for ln in out.splitlines() if "column 'age'" in ln)
    assert heading_of(out, line) == f"{folder / 'patients.csv'}:"


def test_several_problem_classes_are_all_reported(tmp_path, capsys):
    patients, events = mutated("patients", 0, "age", "131")
    patients[1]["sex"] = "martian"
    events[2]["timestamp"] = "2025-01-02T10:17:43"
    events[4]["event_type"] = "journaling_xq"
    events[5]["patient_id"] = "zz-ghost-17"
    code, out = validate(capsys, csv_cohort(tmp_path / "c", patients, events))
    assert code == 2
    assert "5 problems" in out
    for words in ("column 'age': must be a whole number", "column 'sex': must be one of",
                  "column 'timestamp': has no time zone",
                  "column 'event_type': has event types that are not in lapse's vocabulary: 'journaling_xq'",
                  "column 'patient_id': names a patient who is not in"):
        assert words in out, words
    for secret in ("131", "martian", "2025-01-02T10:17:43", "zz-ghost-17"):
        assert secret not in out


def test_many_bad_rows_show_five_and_a_count(tmp_path, capsys):
    events = [dict(e, timestamp=e["timestamp"].replace("Z", "")) for e in EVENTS if e["timestamp"].endswith("Z")]
    code, out = validate(capsys, csv_cohort(tmp_path / "c", PATIENTS, events))
    assert code == 2
    assert "(rows 1, 2, 3, 4, 5 and 1 more)" in out


def test_naive_parquet_timestamps_are_refused(tmp_path, capsys):
    folder = parquet_cohort(tmp_path / "pq")
    events = pd.read_parquet(folder / "events.parquet")
    events["timestamp"] = events["timestamp"].dt.tz_localize(None)
    events.to_parquet(folder / "events.parquet")
    code, out = validate(capsys, folder)
    assert code == 2
    assert f"{folder / 'events.parquet'}:" in out
    assert "column 'timestamp': has no time zone" in out and "(rows 1, 2, 3, 4, 5 and 2 more)" in out


def test_repeated_csv_header_is_reported(tmp_path, capsys):
    folder = csv_cohort(tmp_path / "c")
    text = (folder / "events.csv").read_text().splitlines()
    (folder / "events.csv").write_text("\n".join([text[0] + ",value"] + [ln + ",1" for ln in text[1:]]) + "\n")
    code, out = validate(capsys, folder)
    assert code == 2 and "column 'value': appears more than once in the header" in out


def test_semicolon_csv_gets_a_hint(tmp_path, capsys):
    folder = csv_cohort(tmp_path / "c")
    text = (folder / "patients.csv").read_text()
    (folder / "patients.csv").write_text(text.replace(",", ";"))
    code, out = validate(capsys, folder)
    assert code == 2
    assert "the header is one column holding ';': lapse reads comma-separated CSV" in out
    assert "column 'patient_id': required column is missing" in out


# --- bad files ----------------------------------------------------------------------------


def test_corrupt_files_exit_2_without_traceback(tmp_path):
    folder = csv_cohort(tmp_path / "c")
    (folder / "patients.csv").unlink()
    (folder / "patients.parquet").write_bytes(b"PAR1 this is not parquet")
    header = "patient_id,timestamp,event_type,value"
    (folder / "events.csv").write_text(f"{header}\npat-alpha,x,session,1\npat-alpha,x,session,1,2,3\n")
    lapse = Path(sys.executable).parent / "lapse"
    result = subprocess.run(
        [str(lapse), "validate", "--data", str(folder)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    assert f"{folder / 'patients.parquet'}:" in out and "could not be read as Parquet" in out
    assert f"{folder / 'events.csv'}:" in out and "could not be read as CSV" in out


def test_csv_rows_longer_than_the_header_are_refused(tmp_path, capsys):
    folder = csv_cohort(tmp_path / "c")
    lines = (folder / "events.csv").read_text().splitlines()
    (folder / "events.csv").write_text("\n".join([lines[0]] + [ln + ",extra" for ln in lines[1:]]) + "\n")
    code, out = validate(capsys, folder)
    assert code == 2 and f"{folder / 'events.csv'}:" in out and "more fields than the header" in out


def test_non_utf8_csv_is_named(tmp_path, capsys):
    folder = csv_cohort(tmp_path / "c")
    (folder / "events.csv").write_bytes("patient_id,timestamp\nJosé,x\n".encode("latin-1"))
    code, out = validate(capsys, folder)
    assert code == 2 and f"{folder / 'events.csv'}:" in out and "is not UTF-8" in out


def test_missing_and_ambiguous_tables_exit_2_naming_the_file(tmp_path, capsys):
    folder = csv_cohort(tmp_path / "c")
    (folder / "events.csv").unlink()
    code, out = validate(capsys, folder)
    assert code == 2 and "no 'events' table" in out and "events.csv" in out
    csv_cohort(folder)
    pd.read_csv(folder / "patients.csv").to_parquet(folder / "patients.parquet")
    code, out = validate(capsys, folder)
    assert code == 2 and "patients.parquet" in out and "patients.csv" in out
    code, out = validate(capsys, tmp_path / "nowhere")
    assert code == 2 and "is not a folder" in out


def test_bad_program_json_exits_2(tmp_path, capsys):
    folder = csv_cohort(tmp_path / "c")
    (folder / "program.json").write_text(json.dumps({"sessions_per_week": "three", "weekly_goal": 2}))
    code, out = validate(capsys, folder)
    assert code == 2
    assert "setting 'sessions_per_week' must be a positive number" in out and "weekly_goal" in out
    (folder / "program.json").write_text("{not json")
    code, out = validate(capsys, folder)
    assert code == 2 and "is not valid JSON" in out
    (folder / "program.json").write_text(json.dumps({"core_modules": 6}))
    code, out = validate(capsys, folder)
    assert code == 0 and "program settings read from" in out


def test_now_without_time_zone_is_refused(tmp_path, capsys):
    code = main(["validate", "--data", str(csv_cohort(tmp_path / "c")), "--now", "2025-06-01T00:00:00"])
    assert code == 2 and "--now" in capsys.readouterr().err


# --- frames in memory -------------------------------------------------------------------


def test_check_tables_on_frames_in_memory():
    patients, events = typed_frames()
    assert [p.rule for p in check_tables(patients, events, now=NOW)] == ["extra_columns", "extra_columns"]
    events.loc[3, "event_type"] = "gad7"
    events.loc[3, "value"] = 30.0
    events.index = events.index + 100  # an arbitrary index: rows are still counted by position
    problems = check_tables(patients, events, events_source="request body", now=NOW)
    (bad,) = [p for p in problems if p.severity == "error"]
    assert (bad.source, bad.column, bad.rule, bad.rows) == ("request body", "value", "out_of_range", (4,))
    assert "30" not in str(bad)
    # Events alone: patient links are skipped, the rest is checked.
    assert [p.rule for p in check_tables(None, events, now=NOW) if p.severity == "error"] == ["out_of_range"]


def test_python_datetimes_in_memory_are_checked_for_zones():
    from datetime import datetime, timedelta, timezone

    patients, events = typed_frames()
    stamps = [datetime(2025, 1, 10, tzinfo=timezone(timedelta(hours=2)))] * len(events)
    stamps[2] = datetime(2025, 1, 10)  # naive
    events["timestamp"] = pd.Series(stamps, dtype=object)
    with pytest.raises(ContractError) as err:
        validate_tables(patients, events, now=NOW)
    (bad,) = [p for p in err.value.problems if p.severity == "error"]
    assert (bad.column, bad.rule, bad.rows) == ("timestamp", "naive_timestamp", (3,))


# --- the document matches the code ------------------------------------------------------


def test_data_contract_doc_covers_every_column_and_event_type():
    doc = (REPO / "docs" / "data-contract.md").read_text()
    for col in PATIENT_COLUMNS + EVENT_COLUMNS:
        row = re.search(rf"^\| `{col.name}` \| (\w+) \| (\w+)", doc, flags=re.MULTILINE)
        assert row, col.name
        assert row.group(1) == col.kind and row.group(2).startswith("yes" if col.required else "no"), col.name
    for t in EventType:
        row = re.search(rf"^\| `{t.value}` \|.*\| (yes|no) \|$", doc, flags=re.MULTILINE)
        assert row, t.value
        assert (row.group(1) == "yes") == (t in OWN_ENGAGEMENT), t.value


# --- issue 13: intake rules that refused good data or said too little --------------------


def test_a_session_without_a_duration_is_accepted_and_stored_as_missing():
    patients, events = typed_frames()
    events.loc[0, "value"] = np.nan  # pat-alpha's session: the platform logged no duration
    cohort = validate_tables(patients, events, now=NOW)
    assert cohort.events.loc[0, "event_type"] == "session" and np.isnan(cohort.events.loc[0, "value"])


def test_an_empty_optional_module_number_is_accepted(tmp_path, capsys):
    events = [dict(e) for e in EVENTS]
    events[6]["value"] = ""  # pat-charlie's module_completed, no module number
    code, out = validate(capsys, csv_cohort(tmp_path / "c", PATIENTS, events))
    assert code == 0, out
    assert "module_completed values must be" not in out
    # A number that is given must still be whole.
    events[6]["value"] = "2.5"
    code, out = validate(capsys, csv_cohort(tmp_path / "d", PATIENTS, events))
    assert code == 2 and "module_completed values must be a whole number" in out


def test_unknown_event_types_are_named_with_their_counts_and_the_known_types():
    patients, events = typed_frames()
    events["event_type"] = events["event_type"].astype(object)
    events.loc[[0, 3], "event_type"] = ["jogging", " Jogging"]
    events.loc[4, "event_type"] = " Breathing_Exercise "
    events.loc[5, "event_type"] = "pat-bravo 2025-01-05 felt awful, called the crisis line"  # free text: not vocabulary
    with pytest.raises(ContractError) as err:
        validate_tables(patients, events, now=NOW)
    (bad,) = [p for p in err.value.problems if p.rule == "unknown_event_type"]
    message = str(err.value)
    assert (bad.column, bad.rows, bad.n_rows) == ("event_type", (1, 4, 5, 6), 4)
    # Matched ignoring case and spaces, so named that way: " Jogging" and "jogging" are one type.
    assert "'jogging' (2 rows)" in bad.message and "'breathing_exercise' (1 row)" in bad.message
    assert "not in lapse's vocabulary" in bad.message
    assert all(t.value in bad.message for t in EventType)
    # Only vocabulary is named: never the free text, a patient id, a time or a value.
    assert "1 row with other values, not shown" in bad.message
    for secret in ("felt awful", "crisis", "pat-bravo", "pat-alpha", "2025-01-05", "12.5"):
        assert secret not in message, secret


def test_a_column_of_many_distinct_unknown_types_names_none_of_them():
    patients, _ = typed_frames()
    ids = [f"pat{i:04d}" for i in range(60)]  # e.g. patient ids pasted into event_type
    events = pd.DataFrame({"patient_id": ["pat-alpha"] * 60, "timestamp": [pd.Timestamp("2025-01-05", tz="UTC")] * 60,
                           "event_type": ids, "value": [np.nan] * 60})
    (bad,) = [p for p in check_tables(patients, events, now=NOW) if p.rule == "unknown_event_type"]
    assert "60 rows with other values, not shown" in bad.message and bad.n_rows == 60
    assert not any(i in bad.message for i in ids)
