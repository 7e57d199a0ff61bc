"""External labels: a labels table (patient_id, as_of, dropout) replaces lapse's own rule for training."""

from __future__ import annotations

import pandas as pd
import pytest

from features.external_labels import load_labels
from features.snapshots import training_table
from features.validate import ContractError, load_cohort


def _folder(tmp_path, labels: dict):
    pd.DataFrame({"patient_id": ["a", "b"], "enrolled_at": ["2026-01-01T00:00:00Z", "2026-01-03T00:00:00Z"]}).to_csv(
        tmp_path / "patients.csv", index=False)
    pd.DataFrame({"patient_id": ["a", "a", "b"], "event_type": ["session"] * 3,
                  "timestamp": ["2026-01-02T08:00:00Z", "2026-01-05T08:00:00Z", "2026-01-04T08:00:00Z"]}).to_csv(
        tmp_path / "events.csv", index=False)
    pd.DataFrame(labels).to_csv(tmp_path / "labels.csv", index=False)
    return tmp_path


def test_training_rows_are_the_labelled_times_with_their_given_outcomes(tmp_path):
    data = _folder(tmp_path, {"patient_id": ["a", "b", "a"], "dropout": [1, 0, 0],
                              "as_of": ["2026-01-04T00:00:00Z", "2026-01-06T00:00:00Z", "2026-01-08T00:00:00Z"]})
    cohort = load_cohort(data)
    labels = load_labels(data, cohort.patients)
    table = training_table(cohort.patients, cohort.events, pd.Timestamp("2026-01-09", tz="UTC"), labels=labels)
    assert table["patient_id"].tolist() == ["a", "b", "a"]
    assert table["dropout"].tolist() == [1, 0, 0]  # given, though lapse's own rule would call the first engaged
    assert table["as_of_day"].tolist() == [3, 3, 7]
    assert table["sessions_total"].tolist() == [1, 1, 2]


def test_a_folder_without_labels_has_none(tmp_path):
    data = _folder(tmp_path, {"patient_id": ["a"], "as_of": ["2026-01-04T00:00:00Z"], "dropout": [1]})
    (data / "labels.csv").unlink()
    assert load_labels(data, load_cohort(data).patients) is None


def test_bad_labels_are_named_by_column_and_row(tmp_path):
    data = _folder(tmp_path, {"patient_id": ["a", "zz", "b", "a"], "dropout": [1, 0, 2, 1],
                              "as_of": ["2026-01-04T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-02T00:00:00Z",
                                        "2026-01-04"]})
    with pytest.raises(ContractError) as caught:
        load_labels(data, load_cohort(data).patients)
    report = str(caught.value)
    assert "labels.csv" in report and "column 'dropout': must be" in report and "row 3" in report
    assert "column 'as_of'" in report and "row 4" in report  # a time without a zone


def test_labels_of_unknown_patients_or_before_enrolment_are_named(tmp_path):
    data = _folder(tmp_path, {"patient_id": ["a", "zz", "b", "a"], "dropout": [1, 0, 0, 1],
                              "as_of": ["2026-01-04T00:00:00Z", "2026-01-04T00:00:00Z", "2026-01-02T00:00:00Z",
                                        "2026-01-04T00:00:00Z"]})
    with pytest.raises(ContractError) as caught:
        load_labels(data, load_cohort(data).patients)
    report = str(caught.value)
    assert "column 'patient_id': names a patient who is not in patients (row 2)" in report
    assert "column 'as_of': is before the patient's enrolment (row 3)" in report
    assert "labels a (patient_id, as_of) more than once (row 4)" in report
