"""Honest training: whole enrolment dates per part, a refused split registers nothing, weak models are flagged."""

from __future__ import annotations

import json
import shutil

import mlflow
import numpy as np
import pandas as pd
import pytest

from cli.main import main
from training.honesty import TrainingRefused, check_split_classes, review
from training.quality import feature_quality
from training.splits import Split, SplitError, temporal_split


def _cohorts(sizes: list[int]) -> pd.DataFrame:
    """Patients in cohorts sharing a start date; ids run against time (the latest cohort has the first ids)."""
    rows = []
    n = sum(sizes)
    for day, size in enumerate(sizes):
        for _ in range(size):
            rows.append({"patient_id": f"p{n - len(rows):05d}",
                         "enrolled_at": pd.Timestamp("2026-01-01", tz="UTC") + pd.Timedelta(days=day, hours=len(rows) % 24)})
    return pd.DataFrame(rows)


def test_split_keeps_each_enrolment_date_whole_and_tests_on_the_latest_dates():
    table = _cohorts([30, 25, 40, 35, 50, 20, 45, 30, 25, 40])
    split = temporal_split(table, test_fraction=0.2, validation_fraction=0.2)
    date = table["enrolled_at"].dt.floor("D")
    parts = [set(date.iloc[idx]) for idx in split]
    assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])  # no date split across parts
    assert max(parts[0]) < min(parts[1]) and max(parts[1]) < min(parts[2])
    assert sorted(parts[2]) == sorted(date.unique())[-2:]  # 55 of 340 patients: the two latest dates
    assert sum(len(idx) for idx in split) == len(table)


def test_split_refuses_fewer_than_three_enrolment_dates():
    with pytest.raises(SplitError, match="2 date"):
        temporal_split(_cohorts([50, 50]), 0.2, 0.2)


def test_a_part_with_too_few_of_a_class_is_refused_with_its_counts():
    y = np.array([0, 1] * 50 + [0] * 40, dtype=float)
    split = Split(np.arange(60), np.arange(60, 100), np.arange(100, 140))
    with pytest.raises(TrainingRefused, match=r"test: 40 rows, 0 dropouts, 40 non-dropouts"):
        check_split_classes(y, split, min_class_rows=10)
    check_split_classes(y[:100], Split(np.arange(60), np.arange(60, 80), np.arange(80, 100)), min_class_rows=10)


def test_features_absent_all_missing_or_constant_are_left_out():
    table = pd.DataFrame({"varies": [1.0, 2.0, 3.0], "empty": [np.nan] * 3, "same": [4.0] * 3,
                          "known_or_not": [1.0, np.nan, 1.0]})
    quality = feature_quality(table, ["varies", "empty", "same", "known_or_not", "never_built"])
    assert quality.used == ("varies", "known_or_not")
    assert dict(quality.left_out) == {"empty": "all missing", "same": "constant", "never_built": "absent"}
    assert quality.lines()[0] == "data quality: 2 of 5 features used, 3 left out"


def test_inverted_and_rule_beaten_models_are_flagged():
    rng = np.random.default_rng(0)
    n = 600
    y = rng.random(n) < 0.3
    table = pd.DataFrame({"as_of_day": 7, "dropout": y.astype(int),
                          "days_quiet": np.where(y, 6.0, 1.0) + rng.normal(0, 2, n), "noise": rng.normal(size=n)})
    split = Split(np.arange(400), np.arange(400, 500), np.arange(500, 600))
    report = review(table, split, ["days_quiet", "noise"], "day7", {"good": 0.99, "inverted": 0.35, "weak": 0.6})
    assert report.rule.feature == "days_quiet" and report.rule.higher_is_riskier
    assert 0.6 < report.rule.test_auc < 0.99
    assert [flag.split(":")[0] for flag in report.flags] == ["inverted", "weak"]
    assert "below 0.5" in report.flags[0] and "one-feature rule" in report.flags[1]


@pytest.fixture
def data(tmp_path, sim_data_dir):
    return shutil.copytree(sim_data_dir, tmp_path / "data")


@pytest.fixture
def tracking(tmp_path, monkeypatch, fresh_store):
    uri = fresh_store(tmp_path / "mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def test_train_stops_with_exit_2_and_registers_nothing_when_a_split_is_short_of_a_class(data, tracking, capsys):
    (data / "lapse.toml").write_text((data / "lapse.toml").read_text() + "\n[training]\nmin_class_rows = 100000\n")
    assert main(["train", "--data", str(data), "--as-of-days", "7"]) == 2
    err = capsys.readouterr().err
    assert "min_class_rows" in err and "nothing was registered" in err and "test:" in err
    assert mlflow.MlflowClient(tracking).search_registered_models() == []


def test_train_prints_and_logs_the_data_quality_summary_and_the_one_feature_rule(data, tracking, capsys):
    (data / "lapse.toml").write_text((data / "lapse.toml").read_text() + "\n[training.xgboost]\nmax_rounds = 30\n")
    assert main(["train", "--data", str(data), "--as-of-days", "7"]) == 0
    out = capsys.readouterr().out
    assert "best one-feature rule:" in out and "data quality:" in out
    run = mlflow.search_runs(experiment_names=["lapse-dropout"], output_format="list",
                             filter_string="tags.`lapse.kind` = 'training'")[0]  # the parent run
    assert run.data.tags["lapse.honesty"] in ("ok", "flagged")
    assert "one_feature_rule.day7.auc" in run.data.metrics
    record = json.loads(open(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                                 artifact_path="data_quality.json")).read())
    assert record["used"] and all(item["reason"] for item in record["left_out"])
    assert int(run.data.params["n_features"]) == len(record["used"])
    assert not set(record["used"]) & {item["feature"] for item in record["left_out"]}
