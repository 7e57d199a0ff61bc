"""The Dask engine on a real local cluster of 2 worker processes: same features as one machine, the
service's scores for the same model and patients, the single-machine job's MLflow run, and no lost or
duplicated rows when a worker dies mid-job.

The store-backed tests share one module-scoped cluster and store and run in file order."""

from __future__ import annotations

import math
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("distributed")

from config import TrainingConfig, XGBoostParams  # noqa: E402

CONFIG = TrainingConfig(xgboost=XGBoostParams(nthread=1))
N_PARTITIONS = 4
KEY = ["patient_id", "as_of"]


@pytest.fixture(scope="module")
def client():
    from engines.cluster import dask_client

    with dask_client(workers=2) as c:
        yield c


@pytest.fixture(scope="module")
def cohort(sim_data_dir, client):
    from engines.partitions import read_partitioned

    return read_partitioned(sim_data_dir, npartitions=N_PARTITIONS)


@pytest.fixture(scope="module")
def local_cohort(sim_data_dir):
    from features.io import read_data_end
    from features.validate import load_cohort

    c = load_cohort(sim_data_dir)
    return c, read_data_end(sim_data_dir, c.events)


def _ids_per_partition(patients: pd.DataFrame, events: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({"patients": [frozenset(patients["patient_id"])], "events": [frozenset(events["patient_id"])]})


def test_partitions_hold_whole_patients(cohort, local_cohort):
    import dask.dataframe as dd

    meta = pd.DataFrame({"patients": pd.Series([], dtype=object), "events": pd.Series([], dtype=object)})
    parts = dd.map_partitions(_ids_per_partition, cohort.patients, cohort.events, meta=meta,
                              align_dataframes=False).compute()
    assert len(parts) == N_PARTITIONS
    seen: set = set()
    for row in parts.itertuples():
        assert row.events <= row.patients  # every event sits with its patient
        assert not (row.patients & seen)  # and each patient in one partition only
        seen |= row.patients
    assert seen == set(local_cohort[0].patients["patient_id"])
    assert sum(len(r) for r in parts["patients"]) > 0 and min(len(r) for r in parts["patients"]) > 0


def test_dask_features_equal_single_machine_exactly(cohort, local_cohort):
    from features.snapshots import training_table
    from engines.features import distributed_training_table

    c, data_end = local_cohort
    expected = training_table(c.patients, c.events, data_end).sort_values(KEY, ignore_index=True)
    got = distributed_training_table(cohort, data_end).compute().sort_values(KEY, ignore_index=True)
    assert len(got) == len(expected) > 1000
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    features = [col for col in expected.columns if expected[col].dtype == np.float64]
    assert expected[features].isna().to_numpy().any()  # the NaN positions are part of the comparison
    np.testing.assert_array_equal(got[features].isna().to_numpy(), expected[features].isna().to_numpy())


# A program's own export: its own column names and type names (one mapped onto lapse's session, one of its own).
PROGRAM_TOML = """
[events.columns]
patient_id = "member"
enrolled_at = "joined"
timestamp = "occurred_at"
event_type = "kind"

[events.types."lesson.started"]
maps_to = "session"

[events.types.nudge-tapped]
own_engagement = false

[features]
windows_days = [5, 10]
calendar_every_days = 10

[labels]
engaged_within_days = 7

[scale_out]
events_per_partition = 20000
"""


@pytest.fixture(scope="module")
def program_dir(sim_cohort, tmp_path_factory) -> Path:
    """The simulated cohort as a program would export it (PROGRAM_TOML declares it), Parquet, no meta.json."""
    folder = tmp_path_factory.mktemp("program")
    patients = sim_cohort.patients.rename(columns={"patient_id": "member", "enrolled_at": "joined"})
    kinds = sim_cohort.events["event_type"].astype("str").replace({"session": "Lesson.Started",
                                                                   "reminder_opened": "nudge-tapped"})
    events = sim_cohort.events.assign(event_type=kinds).rename(
        columns={"patient_id": "member", "timestamp": "occurred_at", "event_type": "kind"})
    patients.to_parquet(folder / "patients.parquet")
    events.to_parquet(folder / "events.parquet")
    (folder / "lapse.toml").write_text(PROGRAM_TOML)
    return folder


def test_the_data_end_is_the_latest_event_time_as_one_machine_reads_text_times(sim_cohort, client, tmp_path):
    from engines.partitions import data_end_of, read_partitioned
    from features.io import read_data_end
    from features.validate import load_cohort

    # Times as text in two zones; the latest event, one hour after every other, written at UTC-5, sorts first as text.
    events = sim_cohort.events.copy()
    last = events["timestamp"].max()
    events = pd.concat([events, events.iloc[[0]].assign(timestamp=last + pd.Timedelta(hours=1))], ignore_index=True)
    stamps = events["timestamp"]
    text = [t.tz_convert("America/New_York").isoformat() if i % 2 or t > last else t.isoformat()
            for i, t in enumerate(stamps)]
    assert max(text) != text[-1]  # the text order would pick another event
    sim_cohort.patients.to_parquet(tmp_path / "patients.parquet")
    events.assign(timestamp=pd.array(text, dtype="str")).to_parquet(tmp_path / "events.parquet")

    expected = read_data_end(tmp_path, load_cohort(tmp_path).events)
    assert expected == last + pd.Timedelta(hours=1)
    assert data_end_of(tmp_path, read_partitioned(tmp_path, npartitions=3)) == expected


def _program_settings(folder: Path, **flags):
    from config import load_settings

    return load_settings(folder, folder / "lapse.toml", flags)


def test_a_programs_own_columns_types_settings_and_calendar_give_the_one_machine_table(program_dir, client, capsys):
    from cli.main import main

    local, dask = program_dir / "local.parquet", program_dir / "dask.parquet"
    common = ["features", "--data", str(program_dir), "--config", str(program_dir / "lapse.toml"), "--calendar"]
    assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--out", str(dask), "--engine", "dask", "--workers", "2"]) == 0
    assert "partitions" in capsys.readouterr().out and len(list(dask.glob("*.parquet"))) > 2  # [scale_out] sizes them
    expected = pd.read_parquet(local).sort_values(KEY, ignore_index=True)
    got = pd.read_parquet(dask).sort_values(KEY, ignore_index=True)
    assert len(got) == len(expected) > 1000
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # What the settings say is in the table: the program's own type, its windows, its calendar snapshots.
    assert any("nudge_tapped" in c for c in got.columns)
    assert "sessions_5d" in got.columns and "sessions_14d" not in got.columns
    days = set(got["as_of_day"])
    assert {3, 7, 14, 21, 28} <= days and len(days) > 30  # days since enrolment and the calendar's dates


def test_train_on_the_folder_dask_features_wrote_is_training_on_the_one_machine_table(sim_data_dir, client, tmp_path,
                                                                                       monkeypatch, fresh_store,
                                                                                       capsys):
    """The folder records the run's settings as a table `lapse features` writes on one machine does: `lapse train
    --features FOLDER` trains on the rows of the one-machine table, and refuses the folder under other settings."""
    import mlflow

    from cli.main import main
    from training.runs import digest_of

    local, folder = tmp_path / "local.parquet", tmp_path / "dask.parquet"
    settings = ["--as-of-days", "7,14"]
    assert main(["features", "--data", str(sim_data_dir), "--out", str(local), *settings]) == 0
    assert main(["features", "--data", str(sim_data_dir), "--out", str(folder), *settings, "--engine", "dask",
                 "--workers", "2"]) == 0
    assert folder.is_dir() and pd.read_parquet(folder).attrs == pd.read_parquet(local).attrs != {}
    capsys.readouterr()

    assert main(["train", "--data", str(sim_data_dir), "--features", str(folder), *settings, "--horizon", "7"]) == 2
    assert f"{folder}: built with other settings" in capsys.readouterr().err

    monkeypatch.setenv("MLFLOW_TRACKING_URI", fresh_store(tmp_path / "mlflow"))
    monkeypatch.setenv("LAPSE_TRAINING__XGBOOST__MAX_ROUNDS", "20")
    for table in (folder, local):
        assert main(["train", "--data", str(sim_data_dir), "--features", str(table), *settings]) == 0
    on_local, on_folder = mlflow.search_runs(experiment_names=["lapse-dropout"],
                                             filter_string="tags.`lapse.kind` = 'training'", output_format="list")
    assert on_folder.data.params["data_fingerprint"] == digest_of(pd.read_parquet(local))
    assert on_folder.data.params == on_local.data.params
    assert on_folder.data.metrics == on_local.data.metrics
    capsys.readouterr()


def test_dask_training_reads_the_patients_as_one_machine_does(sim_cohort, client, tmp_path):
    """The patients a Dask training run works with (subgroups, survival) are the contract's canonical table, as on one
    machine, with enrolment times sent as text in another zone."""
    from config import FeatureConfig, LabelConfig
    from engines.training import DaskTrainingTable
    from features.validate import load_cohort

    patients = sim_cohort.patients.copy()
    patients["enrolled_at"] = [t.tz_convert("Asia/Kolkata").isoformat() for t in patients["enrolled_at"]]
    patients.to_parquet(tmp_path / "patients.parquet")
    sim_cohort.events.to_parquet(tmp_path / "events.parquet")
    local = load_cohort(tmp_path).patients.sort_values("patient_id", ignore_index=True)
    built = DaskTrainingTable(client, npartitions=3)(tmp_path, FeatureConfig(), LabelConfig())
    got = built.patients.sort_values("patient_id", ignore_index=True)
    assert str(local["enrolled_at"].dtype) == "datetime64[us, UTC]"
    pd.testing.assert_frame_equal(got, local, check_exact=True)


@pytest.fixture(scope="module")
def labelled_dir(sim_data_dir, sim_cohort, tmp_path_factory) -> Path:
    """The simulated cohort with external labels: two labelled times for every other patient."""
    import shutil

    folder = shutil.copytree(sim_data_dir, tmp_path_factory.mktemp("labelled") / "data")
    patients = sim_cohort.patients.iloc[::2]
    labels = pd.concat([pd.DataFrame({"patient_id": patients["patient_id"].astype("str").array,
                                      "as_of": (patients["enrolled_at"] + pd.Timedelta(days=d)).array,
                                      "dropout": (np.arange(len(patients)) % (d // 5) == 0).astype(np.int64)})
                        for d in (10, 25)], ignore_index=True)
    labels.to_parquet(folder / "labels.parquet")
    return folder


def test_external_labels_give_the_one_machine_table_and_their_problems_name_the_file_and_row(labelled_dir, client,
                                                                                             capsys):
    from cli.main import main

    local, dask = labelled_dir / "local.parquet", labelled_dir / "dask.parquet"
    common = ["features", "--data", str(labelled_dir)]
    assert main([*common, "--out", str(local)]) == 0
    assert main([*common, "--out", str(dask), "--engine", "dask", "--workers", "2"]) == 0
    capsys.readouterr()
    expected = pd.read_parquet(local).sort_values(KEY, ignore_index=True)
    got = pd.read_parquet(dask).sort_values(KEY, ignore_index=True)
    labels = pd.read_parquet(labelled_dir / "labels.parquet")
    assert len(got) == len(expected) == len(labels)  # the labelled times, not lapse's snapshots
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    assert set(got["as_of_day"]) == {10, 25} and got["dropout"].sum() == labels["dropout"].sum()

    # A label for a patient the tables do not hold: refused on the cluster as on one machine, nothing written.
    wrong = pd.concat([labels, labels.iloc[[3]].assign(patient_id="nobody")], ignore_index=True)
    wrong.to_parquet(labelled_dir / "labels.parquet")
    before = sorted(p.name for p in dask.iterdir())
    assert main([*common, "--out", str(dask), "--engine", "dask", "--workers", "2"]) == 2
    err = capsys.readouterr().err
    assert "labels.parquet" in err and "patient_id" in err and "not in patients" in err
    assert f"row {len(wrong)}" in err or f"rows {len(wrong)}" in err
    assert "nobody" not in err  # an id is a patient value: never in an error
    assert sorted(p.name for p in dask.iterdir()) == before


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store):
    return fresh_store(tmp_path_factory.mktemp("mlflow-scaleout"))


@pytest.fixture(scope="module")
def dask_run(client, sim_data_dir, store):
    from engines.training import run_dask_training

    return run_dask_training(client, sim_data_dir, CONFIG, tracking=store, npartitions=N_PARTITIONS)


def _run_contents(uri: str, run_id: str) -> tuple[set[str], set[str], dict]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    run = client.get_run(run_id)

    def walk(path=None):
        for item in client.list_artifacts(run_id, path):
            yield from (walk(item.path) if item.is_dir else [item.path])

    return set(run.data.metrics), set(walk()), run.data.tags


def test_dask_training_is_tracked_like_the_single_machine_job(dask_run, store, sim_data_dir):
    from mlflow import MlflowClient

    from training.job import run_training

    local_run = run_training(sim_data_dir, CONFIG, tracking=store)
    d_metrics, d_artifacts, d_tags = _run_contents(store, dask_run.run_id)
    l_metrics, l_artifacts, _ = _run_contents(store, local_run.run_id)
    assert d_metrics == l_metrics and len(d_metrics) > 50
    assert d_artifacts == l_artifacts and "model_meta.json" in {Path(p).name for p in d_artifacts}
    assert d_tags["lapse.engine"] == "dask"
    # Same table, same split: only the tree fit differs between the engines.
    assert dask_run.counts == {**local_run.counts, "best_iteration": dask_run.counts["best_iteration"]}
    assert dask_run.metrics["xgboost"]["auc"] > 0.7
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    version = client.get_model_version(dask_run.model_name, dask_run.model_version)
    assert float(version.tags["test.auc"]) == pytest.approx(dask_run.metrics["xgboost"]["auc"], abs=1e-6)
    # The local run registered after it, so candidate now points there; put it back on the dask model.
    client.set_registered_model_alias(dask_run.model_name, CONFIG.candidate_alias, dask_run.model_version)


@pytest.fixture(scope="module")
def served(dask_run, store):
    from engines.scoring import load_served_model

    model = load_served_model(store, CONFIG.candidate_alias)
    assert model.version == dask_run.model_version
    return model


def _items(patients: pd.DataFrame, events: pd.DataFrame, ids, as_of):
    from serving.schemas import PatientIn, Profile

    fields = set(Profile.model_fields)
    rows = patients.set_index("patient_id")
    mine = events[events["patient_id"].isin(set(ids))]
    by_patient = {pid: g for pid, g in mine.groupby("patient_id")}
    items = []
    for pid in ids:
        row = rows.loc[pid]
        profile = {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
                   for k, v in row.items() if k in fields}
        profile["enrolled_at"] = row["enrolled_at"].to_pydatetime()
        evs = [{"timestamp": t.to_pydatetime(), "event_type": e, "value": None if math.isnan(v) else v}
               for t, e, v in zip(by_patient[pid]["timestamp"], by_patient[pid]["event_type"],
                                  by_patient[pid]["value"])]
        items.append(PatientIn(patient_id=pid, as_of=as_of.to_pydatetime(), profile=profile, events=evs))
    return items


def test_batch_scores_equal_the_service(cohort, local_cohort, served):
    import json

    from engines.scoring import distributed_scores, score_cohort
    from serving.scoring import score_patients

    c, data_end = local_cohort
    got = distributed_scores(cohort, data_end, served, 5).compute().sort_values("patient_id", ignore_index=True)
    assert got["patient_id"].is_unique and len(got) > 50
    local = score_cohort(c.patients, c.events, data_end, served, 5).sort_values("patient_id", ignore_index=True)
    pd.testing.assert_frame_equal(got, local, check_exact=True)

    sample = got.iloc[np.linspace(0, len(got) - 1, 25).astype(int)]
    items = _items(c.patients, c.events, list(sample["patient_id"]), data_end)
    answers = score_patients(items, served, data_end.to_pydatetime() + timedelta(minutes=1), 5, lambda i: str(i))
    for (_, row), answer in zip(sample.iterrows(), answers):
        assert row["patient_id"] == answer.patient_id
        assert abs(row["risk"] - answer.risk) <= 1e-12
        assert row["tier"] == answer.tier and row["trigger"] == answer.support.trigger
        reasons = json.loads(row["reasons"])
        assert [r["feature"] for r in reasons] == [r.feature for r in answer.reasons]
        assert [r["sentence"] for r in reasons] == [r.sentence for r in answer.reasons]
        np.testing.assert_allclose([r["contribution"] for r in reasons],
                                   [r.contribution for r in answer.reasons], rtol=0, atol=1e-12)


def test_batch_scores_of_a_programs_export_with_its_activity_window_equal_one_machine(program_dir, served):
    from engines.partitions import data_end_of, read_partitioned
    from engines.scoring import distributed_scores, score_cohort
    from features.io import read_data_end
    from features.validate import load_cohort

    settings = _program_settings(program_dir)
    local = load_cohort(program_dir, declared=settings.events)
    data_end = read_data_end(program_dir, local.events)
    cohort = read_partitioned(program_dir, npartitions=3, declared=settings.events)
    assert data_end_of(program_dir, cohort) == data_end
    counts = {}
    for within in (None, 3):
        got = distributed_scores(cohort, data_end, served, 5, within).compute()
        expected = score_cohort(local.patients, local.events, data_end, served, 5, within)
        pd.testing.assert_frame_equal(got.sort_values("patient_id", ignore_index=True),
                                      expected.sort_values("patient_id", ignore_index=True), check_exact=True)
        counts[within] = len(got)
    assert counts[None] > counts[3] > 0  # the narrower activity window scores fewer patients


def _die_once(frame: pd.DataFrame, marker: str, victim: int, partition_info=None) -> pd.DataFrame:
    # The first attempt at partition `victim` kills its worker process outright, mid-compute.
    if partition_info and partition_info["number"] == victim and not os.path.exists(marker):
        Path(marker).write_text(str(os.getpid()))
        os._exit(1)
    return frame


def test_a_worker_killed_mid_job_loses_and_duplicates_nothing(client, cohort, local_cohort, served, tmp_path):
    import dask.dataframe as dd

    from engines.output import write_dataset
    from engines.scoring import distributed_scores, score_cohort

    c, data_end = local_cohort
    workers_before = set(client.scheduler_info()["workers"])
    marker = tmp_path / "killed.pid"
    scores = distributed_scores(cohort, data_end, served, 5)
    doomed = scores.map_partitions(_die_once, str(marker), 2, meta=scores._meta)
    out = write_dataset(doomed, tmp_path / "scores.parquet")

    assert marker.exists() and int(marker.read_text()) != os.getpid()  # a worker really died
    client.wait_for_workers(2, timeout=30)
    assert set(client.scheduler_info()["workers"]) != workers_before  # and the nanny replaced it
    written = dd.read_parquet(str(out)).compute()
    expected = score_cohort(c.patients, c.events, data_end, served, 5)
    assert written["patient_id"].is_unique
    assert set(written["patient_id"]) == set(expected["patient_id"])
    assert len(written) == len(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["killed.pid", "scores.parquet"]  # no temp left


def _fail(frame: pd.DataFrame, partition_info=None) -> pd.DataFrame:
    if partition_info and partition_info["number"] == 1:
        raise RuntimeError("this partition fails")
    return frame


def test_a_failed_write_leaves_no_file_and_keeps_the_previous_one(cohort, local_cohort, served, tmp_path):
    from engines.output import write_dataset
    from engines.scoring import distributed_scores

    _, data_end = local_cohort
    scores = distributed_scores(cohort, data_end, served, 5)
    target = tmp_path / "scores.parquet"
    with pytest.raises(RuntimeError, match="this partition fails"):
        write_dataset(scores.map_partitions(_fail, meta=scores._meta), target)
    assert list(tmp_path.iterdir()) == []
    write_dataset(scores, target)
    before = sorted(p.name for p in target.iterdir())
    with pytest.raises(RuntimeError):
        write_dataset(scores.map_partitions(_fail, meta=scores._meta), target)
    assert sorted(p.name for p in target.iterdir()) == before
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]
