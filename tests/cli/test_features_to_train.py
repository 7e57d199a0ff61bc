"""`lapse features` and `lapse train` read the same settings, and `train --features` trains on the table features wrote."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from cli.main import main


@pytest.fixture
def data(tmp_path, sim_data_dir):
    """A copy of the small simulated cohort (with the lapse.toml the simulator writes)."""
    return shutil.copytree(sim_data_dir, tmp_path / "data")


@pytest.fixture
def tracking(tmp_path, monkeypatch):
    """MLFLOW_TRACKING_URI at a store not made yet (the refusals check that none is)."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


@pytest.fixture
def store(tmp_path, monkeypatch, fresh_store):
    """MLFLOW_TRACKING_URI at a new, empty store, for the tests that track runs."""
    uri = fresh_store(tmp_path / "mlflow")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    return uri


def _recorded(path) -> dict:
    return pd.read_parquet(path).attrs["lapse"]


def test_features_reads_lapse_toml_then_environment_then_flags(data, tmp_path, monkeypatch, capsys):
    simulated = (data / "lapse.toml").read_text()
    assert "[program]" in simulated and "core_modules = 8" in simulated  # the simulator writes the [program] table
    (data / "lapse.toml").write_text(simulated.replace("core_modules = 8", "core_modules = 6")
                                     + "\n[labels]\nhorizon_days = 7\n")
    out = tmp_path / "f.parquet"
    assert main(["features", "--data", str(data), "--out", str(out), "--as-of-days", "7"]) == 0
    assert _recorded(out)["labels"]["horizon_days"] == 7
    assert _recorded(out)["features"]["program"]["core_modules"] == 6
    monkeypatch.setenv("LAPSE_LABELS__HORIZON_DAYS", "10")
    assert main(["features", "--data", str(data), "--out", str(out), "--as-of-days", "7"]) == 0
    assert _recorded(out)["labels"]["horizon_days"] == 10
    assert main(["features", "--data", str(data), "--out", str(out), "--as-of-days", "7", "--horizon", "12"]) == 0
    recorded = _recorded(out)
    assert recorded["labels"]["horizon_days"] == 12 and recorded["features"]["as_of_days"] == [7]
    capsys.readouterr()


def test_train_on_the_features_table_is_training_on_the_same_table(data, tmp_path, store, capsys):
    import mlflow

    (data / "lapse.toml").write_text((data / "lapse.toml").read_text() + "\n[training.xgboost]\nmax_rounds = 40\n")
    table = tmp_path / "features.parquet"
    settings = ["--as-of-days", "7,14", "--definition", "inactivity", "--calendar"]
    assert main(["features", "--data", str(data), "--out", str(table), *settings]) == 0
    assert main(["train", "--data", str(data), "--features", str(table), *settings]) == 0
    assert main(["train", "--data", str(data), *settings]) == 0
    verdict = [line for line in capsys.readouterr().out.splitlines() if line.startswith("time to dropout: ")]

    # The training (parent) runs; each also has a nested run per model.
    runs = mlflow.search_runs(experiment_names=["lapse-dropout"], filter_string="tags.`lapse.kind` = 'training'",
                              output_format="list")
    # Each train printed the run's time-to-dropout verdict, in the words of its tags.
    tags = runs[0].data.tags  # the latest run
    words = {"use": "use it: ", "do not use": "do not use it: ", "none": ""}[tags["lapse.time_to_dropout"]]
    assert len(verdict) == 2 and verdict[-1] == f"time to dropout: {words}{tags['lapse.time_to_dropout_reason']}"
    params = [run.data.params for run in runs]
    assert len(params) == 2
    # The same rows and values whether read from the features table or built by train itself.
    assert params[0]["data_fingerprint"] == params[1]["data_fingerprint"]
    assert {p["label_definition"] for p in params} == {"inactivity"}
    written = pd.read_parquet(table)
    assert written["as_of_day"].nunique() > 2  # the calendar snapshots reached training's table


def test_train_refuses_a_features_table_built_with_other_settings(data, tmp_path, tracking, capsys):
    table = tmp_path / "features.parquet"
    assert main(["features", "--data", str(data), "--out", str(table), "--horizon", "7"]) == 0
    capsys.readouterr()
    assert main(["train", "--data", str(data), "--features", str(table)]) == 2
    err = capsys.readouterr().err
    assert f"{table}: built with other settings" in err and "labels.horizon_days: table 7, now 14" in err
    assert not (tmp_path / "mlflow.db").exists()  # nothing tracked

    pd.DataFrame({"patient_id": ["p1"]}).to_parquet(tmp_path / "foreign.parquet")
    assert main(["train", "--data", str(data), "--features", str(tmp_path / "foreign.parquet")]) == 2
    assert "carries no record of its settings" in capsys.readouterr().err
