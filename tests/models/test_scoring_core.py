"""The scoring core and the model metadata, on a model trained by the training job into a real MLflow SQLite
store: the service's request path, the clinician page and batch scoring give the same answers for the same
patients, the metadata survives the round trip, and a model logged without this lapse's metadata is refused."""

from __future__ import annotations

from dataclasses import dataclass

import json
import math
import shutil
from datetime import timedelta
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient
from scipy.special import expit

from config import ServingConfig
from engines.scoring import load_served_model, score_cohort
from features.io import read_data_end
from features.point_in_time import compute_features
from features.validate import load_cohort
from models.loaded import ModelRefused, load_version
from models.metadata import META_FILE, SCHEMA_VERSION, MetadataError, read_metadata, write_metadata
from models.scorer import load_scorer
from models.scoring import explain_row, model_matrix, score_frame
from serving.model_store import ModelStore
from serving.schemas import PatientIn, Profile
from serving.scoring import score_patients
from serving.timeline import CohortSource
from serving.ui_data import recompute

MODEL = "lapse-dropout"
TOP = 5


@dataclass(frozen=True)
class Trained:
    """What these tests need of the trained model: where it is registered and the run that logged it."""

    model_uri: str
    model_version: str
    run_id: str


@pytest.fixture(scope="module")
def store(tmp_path_factory, champion, private_store):
    """The session's champion (trained by the training job on the simulated cohort) in a store of our own."""
    root = tmp_path_factory.mktemp("core")
    uri = private_store(root)
    run_id = MlflowClient(uri, registry_uri=uri).get_model_version(MODEL, champion.version).run_id
    return uri, Trained(champion.model_uri, champion.version, run_id), root


@pytest.fixture(scope="module")
def batch_model(store):
    uri, summary, _ = store
    model = load_served_model(uri, "champion")
    assert model.version == summary.model_version
    return model


@pytest.fixture(scope="module")
def cohort(sim_data_dir):
    loaded = load_cohort(sim_data_dir)
    return loaded, read_data_end(sim_data_dir, loaded.events)


def _raw_items(patients: pd.DataFrame, events: pd.DataFrame, ids: list[str],
               as_of: pd.Timestamp) -> list[PatientIn]:
    """The patients as /score items carrying their profile and every event up to `as_of`."""
    fields = set(Profile.model_fields)
    rows = patients.set_index("patient_id")
    mine = events[events["patient_id"].isin(set(ids)) & (events["timestamp"] <= as_of)]
    by_patient = {pid: group for pid, group in mine.groupby("patient_id")}
    items = []
    for pid in ids:
        row = rows.loc[pid]
        profile = {k: (None if pd.isna(v) else (v.item() if hasattr(v, "item") else v))
                   for k, v in row.items() if k in fields}
        profile["enrolled_at"] = row["enrolled_at"].to_pydatetime()
        own = by_patient[pid]
        evs = [{"timestamp": t.to_pydatetime(), "event_type": e, "value": None if math.isnan(v) else v}
               for t, e, v in zip(own["timestamp"], own["event_type"], own["value"])]
        items.append(PatientIn(patient_id=pid, as_of=as_of.to_pydatetime(), profile=profile, events=evs))
    return items


def _same(a, b) -> None:
    assert a.patient_id == b.patient_id
    assert abs(a.risk - b.risk) <= 1e-12
    assert a.tier == b.tier and a.support == b.support and a.model == b.model
    assert [(r.feature, r.sentence) for r in a.reasons] == [(r.feature, r.sentence) for r in b.reasons]
    np.testing.assert_allclose([r.contribution for r in a.reasons], [r.contribution for r in b.reasons],
                               rtol=0, atol=1e-12)


def test_the_service_the_clinician_page_and_batch_scoring_give_the_same_answers(store, batch_model, cohort,
                                                                                sim_data_dir):
    uri, summary, _ = store
    loaded, data_end = cohort
    served = ModelStore(ServingConfig(alias="candidate", warmup_predictions=1), uri)
    assert served.reload().outcome == "swapped"
    model = served.current

    batch = score_cohort(loaded.patients, loaded.events, data_end, batch_model, TOP)
    assert len(batch) > 50 and batch["tier"].nunique() > 1 and batch["trigger"].any()
    sample = batch.iloc[np.linspace(0, len(batch) - 1, 30).astype(int)].reset_index(drop=True)
    ids = list(sample["patient_id"])

    # The service, from raw profile + events (the contract checks and training's features) ...
    now = data_end.to_pydatetime() + timedelta(minutes=1)
    from_raw = score_patients(_raw_items(loaded.patients, loaded.events, ids, data_end), model, now, TOP, str)
    # ... and from ready features.
    times = pd.Series([data_end] * len(ids)).astype("datetime64[us, UTC]")
    frame = pd.DataFrame({"patient_id": ids, "as_of": times})
    features = compute_features(loaded.patients, loaded.events, frame, config=model.feature_config)
    X = model_matrix(features, model.feature_names)
    given = [PatientIn(patient_id=pid, as_of=data_end.to_pydatetime(),
                       features={n: None if math.isnan(v) else float(v) for n, v in zip(model.feature_names, row)})
             for pid, row in zip(ids, X)]
    from_features = score_patients(given, model, now, TOP, str)
    # The clinician page recomputes logged decisions from the data folder.
    logged = [{"patient_id": pid, "as_of": data_end.isoformat(), "model_version": model.version, "risk": risk}
              for pid, risk in zip(ids, sample["risk"])]
    page = recompute(model, CohortSource(sim_data_dir), logged, TOP)
    assert set(page) == set(ids)

    for i, pid in enumerate(ids):
        _same(from_raw[i], from_features[i])
        _same(from_raw[i], page[pid].score)
        row = sample.iloc[i]
        assert row["patient_id"] == pid and abs(row["risk"] - from_raw[i].risk) <= 1e-12
        assert row["tier"] == from_raw[i].tier and row["trigger"] == from_raw[i].support.trigger
        assert row["priority"] == from_raw[i].support.priority
        assert json.loads(row["reasons"]) == [{"feature": r.feature, "label": r.label, "value": r.value,
                                               "contribution": r.contribution, "sentence": r.sentence}
                                              for r in from_raw[i].reasons]
    assert {a.support.trigger for a in from_raw} == {True, False}  # both branches of the decision compared


def test_the_full_breakdown_agrees_with_the_score(batch_model, cohort):
    loaded, data_end = cohort
    model = batch_model
    frame = pd.DataFrame({"patient_id": loaded.patients["patient_id"].head(40).array,
                          "as_of": pd.Series([data_end] * 40).astype("datetime64[us, UTC]").array})
    features = compute_features(loaded.patients, loaded.events, frame, config=model.feature_config)
    scores = score_frame(features, model, TOP)
    X = model_matrix(features, model.feature_names)
    for x, score in zip(X, scores):
        full = explain_row(x, model, score.patient_id, score.as_of)
        assert abs(full.risk - score.risk) <= 1e-12 and full.tier == score.tier
        assert len(full.contributions) == len(model.feature_names)
        assert full.margin == pytest.approx(full.base_value + sum(r.contribution for r in full.contributions),
                                            abs=1e-9)
        assert expit(full.margin) == pytest.approx(full.risk, abs=1e-9)
        assert sum(level.contribution for level in full.levels) == pytest.approx(full.margin - full.base_value,
                                                                                 abs=1e-9)
        top = [r for r in full.contributions[:TOP] if r.contribution != 0.0]
        assert [(r.feature, r.sentence) for r in top] == [(r.feature, r.sentence) for r in score.reasons]
        assert full.status == score.status and full.status_reason == score.status_reason
        # A patient outside the training population (models/status.py) never triggers support.
        assert score.support.trigger == (score.status == "scored" and score.risk >= model.trigger_risk)


def test_the_metadata_survives_the_round_trip(store, tmp_path):
    uri, summary, _ = store
    metadata = load_scorer(summary.model_uri, tracking_uri=uri).metadata
    assert metadata.schema_version == SCHEMA_VERSION
    assert metadata.label.horizon_days == 14 and metadata.feature_config().as_of_days == (3, 7, 14, 21, 28)
    assert [t.name for t in metadata.tiers] == ["high", "medium", "low"] and metadata.trigger_tier == "high"
    assert metadata.training_window.test.patients > 0 and metadata.headline_metrics["auc"] > 0.5
    # The run's artifact is the same metadata as the registered model's.
    run_copy = mlflow.artifacts.download_artifacts(run_id=summary.run_id, artifact_path=META_FILE,
                                                   dst_path=str(tmp_path), tracking_uri=uri)
    assert read_metadata(run_copy) == metadata
    written = write_metadata(tmp_path / "again.json", metadata)
    assert read_metadata(written) == metadata


def _register_with_metadata(uri: str, summary, root: Path, name: str, change) -> str:
    """A new registered version whose scorer folder is the trained one's with its metadata JSON changed."""
    folder = root / name
    shutil.rmtree(folder, ignore_errors=True)
    source = Path(mlflow.artifacts.download_artifacts(artifact_uri=summary.model_uri,
                                                      dst_path=str(root / f"{name}-src"), tracking_uri=uri))
    meta_path = next(source.rglob(META_FILE))
    shutil.copytree(meta_path.parent, folder)
    raw = json.loads((folder / META_FILE).read_text())
    (folder / META_FILE).write_text(json.dumps(change(raw)))
    client = MlflowClient(uri, registry_uri=uri)
    return str(client.create_model_version(MODEL, source=str(folder)).version)


def _old_format(raw: dict) -> dict:
    # What an older lapse wrote: a "format" key and no schema_version.
    return {**{k: v for k, v in raw.items() if k != "schema_version"}, "format": 1}


def test_a_model_logged_without_this_metadata_is_refused_with_what_to_do(store):
    uri, summary, root = store
    old = _register_with_metadata(uri, summary, root, "old", _old_format)
    with pytest.raises(ModelRefused) as refused:
        load_version(uri, MODEL, old, "candidate")
    message = str(refused.value)
    assert f"version {old}" in message and "schema_version" in message and "retrain" in message

    client = MlflowClient(uri, registry_uri=uri)
    client.set_registered_model_alias(MODEL, "legacy", old)
    with pytest.raises(ValueError, match=f"version {old} .*retrain"):
        load_served_model(uri, "legacy")
    outcome = ModelStore(ServingConfig(alias="legacy", warmup_predictions=1), uri).reload()
    assert outcome.outcome == "refused" and "retrain" in outcome.detail and f"version {old}" in outcome.detail

    future = _register_with_metadata(uri, summary, root, "future", lambda raw: {**raw, "schema_version": 99})
    with pytest.raises(ModelRefused, match=f"version {future} .*schema version 99.*retrain"):
        load_version(uri, MODEL, future, "candidate")

    broken = _register_with_metadata(uri, summary, root, "broken", lambda raw: {**raw, "tiers": "high"})
    with pytest.raises(ModelRefused, match=f"version {broken} .*tiers.*retrain"):
        load_version(uri, MODEL, broken, "candidate")


def test_a_model_folder_without_schema_version_is_refused_by_the_scorer(store, tmp_path):
    uri, summary, _ = store
    source = Path(mlflow.artifacts.download_artifacts(artifact_uri=summary.model_uri, dst_path=str(tmp_path),
                                                      tracking_uri=uri))
    folder = next(source.rglob(META_FILE)).parent
    meta = folder / META_FILE
    meta.write_text(json.dumps(_old_format(json.loads(meta.read_text()))))
    with pytest.raises(MetadataError, match=f"{folder}.*older lapse.*retrain"):
        load_scorer(folder)


def test_the_fit_status_is_the_label_rules_eligibility(batch_model, cohort):
    from features.labels import compute_labels
    from features.snapshots import snapshot_times
    from models.status import fit_statuses

    loaded, data_end = cohort
    rows = snapshot_times(loaded.patients, [3, 7, 14, 28, 42])
    features = compute_features(loaded.patients, loaded.events, rows, config=batch_model.feature_config)
    labels = compute_labels(loaded.events, rows, data_end, batch_model.label_config)
    scored = np.array([s is None for s in fit_statuses(model_matrix(features, batch_model.feature_names),
                                                       batch_model)])
    eligible = labels["eligible"].to_numpy()
    assert scored.any() and (~scored).any()
    # The one difference allowed: an explicit discontinuation before the as-of time, which no feature shows.
    gone = loaded.events[loaded.events["event_type"] == "discontinued"].groupby("patient_id")["timestamp"].min()
    first_gone = rows["patient_id"].map(gone)
    discontinued = (first_gone.notna() & (first_gone <= rows["as_of"])).to_numpy()
    assert np.array_equal(scored & ~discontinued, eligible & ~discontinued)


def test_the_fit_status_at_the_engagement_window_boundary(batch_model):
    from models.status import fit_statuses

    names = list(batch_model.feature_names)
    window = batch_model.label_config.engaged_within_days
    X = np.zeros((4, len(names)))
    X[:, names.index("active_days_total")] = [3.0, 3.0, 0.0, np.nan]
    X[:, names.index("days_since_last_engagement")] = [window - 1e-6, window, 5.0, 40.0]
    assert [s.code if s else None for s in fit_statuses(X, batch_model)] == [None, "lapsed", "no_engagement_yet",
                                                                             "lapsed"]
