"""A program's own data: its columns and event vocabulary declared in lapse.toml, validated and made features."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from cli.main import main
from config import ConfigError, EventsConfig, FeatureConfig, LabelConfig, load_settings
from features.catalog import declared_specs
from features.labels import compute_labels
from features.point_in_time import compute_features, compute_features_one
from features.validate import load_cohort

START = pd.Timestamp("2026-01-01", tz="UTC")


def _write_program(folder, types=("Login", "quiz_submitted", "quiz_submitted", "page_view")):
    """A program's own export: its own patient id column and event names."""
    folder.mkdir(exist_ok=True)
    pd.DataFrame({"user": ["a", "b"], "enrolled_at": ["2026-01-01T00:00:00Z"] * 2}).to_csv(
        folder / "patients.csv", index=False)
    pd.DataFrame({"user": ["a", "a", "b", "b"], "timestamp": ["2026-01-02T09:00:00Z"] * 4, "event_type": list(types),
                  "value": ["", "5.5", "7", ""]}).to_csv(folder / "events.csv", index=False)
    return folder


def test_validate_names_unknown_types_and_its_suggested_declaration_makes_the_data_valid(tmp_path, capsys):
    data = _write_program(tmp_path / "program")
    (data / "lapse.toml").write_text('[events.columns]\npatient_id = "user"\n')
    assert main(["validate", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert "'quiz_submitted' (2 rows), 'login' (1 row), 'page_view' (1 row)" in err
    snippet = err[err.index("[events.types."):].strip()
    assert re.search(r'\[events.types.quiz_submitted\]\nmaps_to = "quiz_submitted" .*\nown_engagement = true .*\n'
                     r'value = "score"', snippet)
    assert re.search(r'\[events.types.page_view\]\n.*\n.*\nvalue = "none"', snippet)

    (data / "lapse.toml").write_text((data / "lapse.toml").read_text() + "\n" + snippet + "\n")
    assert main(["validate", "--data", str(data)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"quiz_submitted\s+2\n", out) and re.search(r"login\s+1\n", out)


def test_a_type_mapped_onto_lapse_s_vocabulary_is_read_as_that_type(tmp_path):
    data = _write_program(tmp_path / "program")
    (data / "lapse.toml").write_text('[events.columns]\npatient_id = "user"\n[events.types.login]\nmaps_to = "session"\n'
                                     '[events.types.quiz_submitted]\nvalue = "score"\n'
                                     '[events.types.page_view]\nown_engagement = false\n')
    cohort = load_cohort(data, declared=load_settings(data).events)
    assert cohort.events["event_type"].tolist() == ["session", "quiz_submitted", "quiz_submitted", "page_view"]
    assert cohort.events["patient_id"].tolist() == ["a", "a", "b", "b"]


def test_a_bad_declaration_is_refused_naming_its_key(tmp_path):
    (tmp_path / "lapse.toml").write_text('[events.types.quiz]\nvalue = "grade"\n')
    with pytest.raises(ConfigError, match=r"events.*value"):
        load_settings(tmp_path)


def _declared_config() -> FeatureConfig:
    events = EventsConfig(types={"quiz_submitted": {"value": "score", "words": "quiz submissions"},
                                 "nudge": {"own_engagement": False}})
    return FeatureConfig(events=events)


def _events(rows):
    return pd.DataFrame({"patient_id": [r[0] for r in rows],
                         "timestamp": pd.Series([START + pd.Timedelta(days=r[1]) for r in rows]).dt.as_unit("us"),
                         "event_type": [r[2] for r in rows], "value": [r[3] for r in rows]})


def test_declared_types_become_features_with_clinician_words_and_equal_single_patient_answers():
    config = _declared_config()
    patients = pd.DataFrame({"patient_id": ["a", "b"], "enrolled_at": pd.Series([START, START]).dt.as_unit("us")})
    events = _events([("a", 1.4, "quiz_submitted", 5.0), ("a", 2.4, "quiz_submitted", 7.0),
                      ("a", 9.4, "quiz_submitted", 9.0), ("a", 10.4, "quiz_submitted", np.nan),
                      ("a", 10.5, "nudge", np.nan), ("b", 3.4, "nudge", np.nan)])
    as_of = pd.DataFrame({"patient_id": ["a", "b"], "as_of": pd.Series([START + pd.Timedelta(days=12)] * 2)})
    f = compute_features(patients, events, as_of, config).set_index("patient_id")
    assert f.loc["a", "quiz_submitted_7d"] == 2 and f.loc["a", "quiz_submitted_total"] == 4
    assert f.loc["a", "quiz_submitted_active_days_14d"] == 4
    assert f.loc["a", "quiz_submitted_value_7d"] == 9.0  # the mean of the week's known scores
    assert f.loc["a", "quiz_submitted_value_change_7d"] == 3.0  # against the mean of the week before (6)
    assert np.isnan(f.loc["b", "quiz_submitted_value_7d"])
    assert f.loc["b", "nudge_total"] == 1 and "nudge_active_days_7d" not in f.columns  # not own engagement
    # A declared own-engagement type is engagement: the nudge is not.
    assert f.loc["a", "active_days_total"] == 4 and f.loc["b", "active_days_total"] == 0
    specs = {s.name: s for s in declared_specs(config)}
    assert specs["quiz_submitted_7d"].label == "Quiz submissions in the last 7 days"
    assert specs["quiz_submitted_7d"].describe(2.0) == "2 quiz submissions in the last 7 days"
    assert specs["nudge_total"].level == "intervention" and specs["quiz_submitted_total"].level == "usage"

    mine = events[events["patient_id"] == "a"]
    one = compute_features_one(patients.iloc[[0]], mine["timestamp"].astype("int64").to_numpy(),
                               mine["event_type"].to_numpy(), mine["value"].to_numpy(),
                               int(as_of["as_of"].dt.as_unit("us").astype("int64").iloc[0]), config)
    np.testing.assert_array_equal(one, f.loc["a"].drop("as_of").to_numpy(dtype=np.float64))


def test_declared_own_engagement_keeps_a_patient_engaged_for_the_inactivity_label():
    config = _declared_config()
    events = _events([("a", 1.0, "quiz_submitted", 5.0), ("a", 8.0, "quiz_submitted", 6.0)])
    as_of = pd.DataFrame({"patient_id": ["a"], "as_of": pd.Series([START + pd.Timedelta(days=3)])})
    labels = LabelConfig(horizon_days=7, definition="inactivity")
    declared = compute_labels(events, as_of, START + pd.Timedelta(days=30), labels, config.events)
    unknown = compute_labels(events, as_of, START + pd.Timedelta(days=30), labels)
    assert declared["eligible"].iloc[0] and declared["dropout"].iloc[0] == 0
    assert not unknown["eligible"].iloc[0]  # without the declaration the quiz is nobody's engagement


def test_a_type_named_with_dots_is_suggested_quoted_and_read_under_a_feature_safe_name(tmp_path, capsys):
    data = _write_program(tmp_path / "program", types=("page.view", "page.view", "session", "session"))
    (data / "lapse.toml").write_text('[events.columns]\npatient_id = "user"\n')
    assert main(["validate", "--data", str(data)]) == 2
    err = capsys.readouterr().err
    assert '[events.types."page.view"]\nmaps_to = "page_view"' in err
    (data / "lapse.toml").write_text((data / "lapse.toml").read_text() + err[err.index("[events.types."):])
    assert main(["validate", "--data", str(data)]) == 0
    assert re.search(r"page_view\s+2\n", capsys.readouterr().out)


def test_a_type_mapped_onto_lapse_s_vocabulary_cannot_redefine_it(tmp_path):
    (tmp_path / "lapse.toml").write_text('[events.types.login]\nmaps_to = "session"\nvalue = "count"\n')
    with pytest.raises(ConfigError, match="leave out value"):
        load_settings(tmp_path)
