"""The fairness gate: the bootstrap arithmetic on hand-made data, the gate's verdicts on synthetic
holdouts, then the real chain on a cohort of the simulator's default settings (a fair model is promoted
without an override; a model trained to ignore one group is refused, by a finished run that names it)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from config import PromotionGates, TrainingConfig, XGBoostParams
from training.bootstrap import PairCounts, band_calibration, resample_weights
from training.fairness import INSUFFICIENT, PASS, group_evidence
from training.metrics import expected_calibration_error, sigmoid

GATES = PromotionGates(bootstrap_resamples=300)
# The end-to-end cohort: the simulator's defaults with a fraction of its patients. Enough for the fair
# model to pass every default gate and for the gate to refuse the model that learned nothing about men, each
# by a wide margin (the test trains twice and promotes three times on it).
END_TO_END_PATIENTS = 6_000


def _holdout(patients: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """Patients with 1-4 rows each, a true risk per row, outcomes drawn from it, and two attributes.

    `sex` has a large "male" group, a small "other" and a tiny "unknown" one; `band` cuts across sex.
    """
    rng = np.random.default_rng(seed)
    key = np.repeat(np.arange(patients), rng.integers(1, 5, patients))
    sex = rng.choice(["female", "male", "other", "unknown"], size=patients, p=[0.6, 0.381, 0.015, 0.004])[key]
    band = rng.choice(["young", "old"], size=patients)[key]
    z = rng.normal(0, 1.0, patients)[key] + rng.normal(-1.0, 1.0, len(key))
    risk = sigmoid(z)
    y = (rng.random(len(key)) < risk).astype(np.float64)
    return y, risk, key, pd.DataFrame({"sex": sex, "band": band})


def _gates(attributes: tuple[str, ...] = ("sex", "band")) -> PromotionGates:
    return GATES.model_copy(update={"fairness_attributes": attributes})


# ---------------------------------------------------------------- the bootstrap arithmetic

def test_resamples_draw_patients_and_weighted_auc_matches_sklearn():
    y, risk, key, groups = _holdout(600)
    risk = np.round(risk, 2)  # ties on purpose
    weights = resample_weights(key, 50, seed=3)
    assert weights.shape == (len(y), 51) and (weights[:, 0] == 1).all()
    np.testing.assert_array_equal(weights, resample_weights(key, 50, seed=3))  # seeded
    # Every row of a patient counts as often as the patient was drawn; each resample draws as many patients.
    first_row = np.unique(key, return_index=True)[1]
    np.testing.assert_array_equal(weights[first_row][key], weights)
    assert (weights[first_row, 1:].sum(axis=0) == len(first_row)).all()

    male = groups["sex"].to_numpy() == "male"
    auc, rest = PairCounts(risk, y, weights).group_and_rest(male, weights)
    for k in (0, 7, 50):
        w = weights[:, k]
        assert auc[k] == pytest.approx(roc_auc_score(y[male], risk[male], sample_weight=w[male]), abs=1e-6)
        assert rest[k] == pytest.approx(roc_auc_score(y[~male], risk[~male], sample_weight=w[~male]), abs=1e-6)


def test_calibration_error_is_centred_near_zero_for_true_risks_in_a_small_group():
    ones = np.ones((300, 1), dtype=np.float32)
    debiased, plain = [], []
    for seed in range(100):  # 100 groups of 300 rows whose risks are the truth
        rng = np.random.default_rng(seed)
        risk = rng.uniform(0.05, 0.6, 300)
        y = (rng.random(300) < risk).astype(np.float64)
        debiased.append(band_calibration(y, risk, ones, bands=10)[0][0])
        plain.append(expected_calibration_error(y, risk))
    # The plain ECE of 300 rows is mostly sampling noise; the debiased error removes it.
    assert np.median(plain) > 0.03 and np.median(debiased) < 0.01

    halved, ratio_halved = band_calibration(y, risk / 2, ones, bands=10)
    assert halved[0] > 0.1
    assert ratio_halved[0] == pytest.approx(2 * band_calibration(y, risk, ones, bands=10)[1][0], rel=1e-5)


# ---------------------------------------------------------------- the gate's verdicts

def test_true_risks_pass_and_every_group_is_reported_with_intervals():
    y, risk, key, groups = _holdout()
    report = group_evidence(y, risk, threshold=0.5, groups=groups, patient_key=key, gates=_gates(), seed=1)
    assert not report.failures
    by_group = {(g.attribute, g.group): g for g in report.groups}
    assert set(by_group) == {("sex", "female"), ("sex", "male"), ("sex", "other"), ("sex", "unknown"),
                             ("band", "old"), ("band", "young")}
    female = by_group[("sex", "female")]
    assert female.status == PASS and female.auc.low < female.auc.value < female.auc.high
    assert female.tpr.low < female.tpr.value < female.tpr.high
    assert female.observed_expected.low < 1 < female.observed_expected.high
    assert female.patients < female.rows  # patients, not rows, are resampled
    # The tiny group cannot say anything: reported as such, not judged.
    assert by_group[("sex", "unknown")].status == INSUFFICIENT
    assert by_group[("sex", "unknown")].positives < GATES.group_min_positives
    table = report.table()
    assert {"auc", "auc_low", "auc_high", "calibration_error_high", "tpr_low", "status"} <= set(table.columns)
    assert json.dumps(report.to_dict())  # JSON-ready, NaN as null


def test_noise_for_one_group_is_refused_naming_attribute_group_and_metric():
    y, risk, key, groups = _holdout()
    male = groups["sex"].to_numpy() == "male"
    unfair = risk.copy()
    unfair[male] = np.random.default_rng(9).permutation(risk[male])  # same risks, shuffled within the group
    report = group_evidence(y, unfair, 0.5, groups, key, _gates(), seed=1)
    failed = {(f.attribute, f.group, f.metric) for f in report.failures}
    assert ("sex", "male", "AUC gap to rest") in failed and ("sex", "male", "calibration error") in failed
    assert not any(group == "female" for _, group, _ in failed)
    assert "FAIL: sex=male AUC gap to rest" in "\n".join(report.lines())

    # The same noise in a group too small to judge is reported, not failed.
    unknown = groups["sex"].to_numpy() == "unknown"
    tiny = risk.copy()
    tiny[unknown] = np.random.default_rng(9).permutation(risk[unknown])
    report = group_evidence(y, tiny, 0.5, groups, key, _gates(("sex",)), seed=1)
    assert not report.failures
    assert {g.group: g.status for g in report.groups}["unknown"] == INSUFFICIENT


def test_a_group_served_worse_than_under_the_champion_is_refused():
    y, risk, key, groups = _holdout()
    rng = np.random.default_rng(2)
    champion = sigmoid(np.log(risk / (1 - risk)) + rng.normal(0, 0.3, len(risk)))
    same = group_evidence(y, champion, 0.5, groups, key, _gates(), seed=1, champion_risk=champion)
    assert not same.failures and all(g.auc_change.value == 0 for g in same.groups)

    young = groups["band"].to_numpy() == "young"
    candidate = champion.copy()
    candidate[young] = sigmoid(np.log(champion[young] / (1 - champion[young])) + rng.normal(0, 1.5, young.sum()))
    worse = group_evidence(y, candidate, 0.5, groups, key, _gates(), seed=1, champion_risk=champion)
    failed = {(f.attribute, f.group, f.metric) for f in worse.failures}
    assert ("band", "young", "AUC vs champion") in failed
    assert not any(group == "old" for _, group, _ in failed)


# ---------------------------------------------------------------- the default cohort, end to end

@pytest.fixture(scope="module")
def default_cohort(tmp_path_factory) -> Path:
    """A cohort of the simulator's default settings (what `make demo` uses), END_TO_END_PATIENTS of its
    patients, written as a data folder."""
    from simulation import simulate
    from simulation.output import write_cohort
    from simulation.settings import SimulationConfig

    config = replace(SimulationConfig(), n_patients=END_TO_END_PATIENTS)
    return write_cohort(simulate(config), config, tmp_path_factory.mktemp("default") / "cohort")


@pytest.fixture(scope="module")
def store(tmp_path_factory, fresh_store) -> str:
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    return fresh_store(tmp_path_factory.mktemp("mlflow"))


CONFIG = TrainingConfig(xgboost=XGBoostParams(nthread=1))


def _client(uri):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def test_fair_model_is_promoted_and_one_trained_to_ignore_a_group_is_refused(default_cohort, store, tmp_path):
    from training.job import load_training_data, log_training_run
    from training.promotion import promote
    from training.splits import temporal_split

    data = load_training_data(default_cohort)
    fair = log_training_run(data, CONFIG, tracking=store, run_name="fair")
    promoted = promote(CONFIG, tracking=store)  # the default gates, no override
    gates = {g.name: g for g in promoted.gates}
    assert promoted.passed and promoted.promoted and promoted.override_reason is None, gates
    assert gates["subgroup_fairness"].passed and "insufficient evidence" in gates["subgroup_fairness"].detail
    client = _client(store)
    run = client.get_run(promoted.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["lapse.promotion"] == "promoted"
    evidence = json.loads(Path(client.download_artifacts(promoted.run_id, "fairness/fairness.json", str(tmp_path)))
                          .read_text())
    assert {g["attribute"] for g in evidence["groups"]} == {"sex", "age_band", "education", "race_ethnicity"}
    assert evidence["resampled"] == "patient" and evidence["resamples"] == PromotionGates().bootstrap_resamples
    white = next(g for g in evidence["groups"] if g["group"] == "white")
    assert white["auc"]["low"] < white["auc"]["value"] < white["auc"]["high"] and white["tpr"]["high"] > 0
    groups_csv = pd.read_csv(client.download_artifacts(promoted.run_id, "fairness/groups.csv", str(tmp_path)))
    assert len(groups_csv) == len(evidence["groups"])

    # The same data, but the training and validation labels of male patients shuffled among them:
    # the model learns nothing about men. Test labels stay true, since the gate judges on them.
    split = temporal_split(data.table, CONFIG.test_fraction, CONFIG.validation_fraction)
    fit_rows = np.concatenate([split.train, split.validation])
    male = data.table["patient_id"].map(data.patients.set_index("patient_id")["sex"]).to_numpy() == "male"
    rows = fit_rows[male[fit_rows]]
    labels = data.table["dropout"].to_numpy().copy()
    labels[rows] = np.random.default_rng(1).permutation(labels[rows])
    unfair = log_training_run(replace(data, table=data.table.assign(dropout=labels)), CONFIG, tracking=store,
                              run_name="male labels shuffled")
    refused = promote(CONFIG, tracking=store)
    gates = {g.name: g for g in refused.gates}
    assert not refused.promoted and not gates["subgroup_fairness"].passed
    assert "sex=male AUC gap to rest" in gates["subgroup_fairness"].detail
    assert "sex=male calibration error" in gates["subgroup_fairness"].detail
    assert "sex=male AUC vs champion" in gates["subgroup_vs_champion"].detail
    assert str(client.get_model_version_by_alias(CONFIG.registered_model, "champion").version) == fair.model_version
    run = client.get_run(refused.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["lapse.promotion"] == "refused"
    reasons = Path(client.download_artifacts(refused.run_id, "refusal.txt", str(tmp_path))).read_text()
    assert "subgroup_fairness: sex=male AUC gap to rest" in reasons
    tags = client.get_model_version(CONFIG.registered_model, unfair.model_version).tags
    assert tags["gate.subgroup_fairness"] == "fail"

    # `lapse promote` reports the refusal with its exit code for a refusal (1; 2 means no candidate).
    done = subprocess.run([sys.executable, "-m", "cli", "promote"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "MLFLOW_TRACKING_URI": store})
    assert done.returncode == 1, done.stderr[-2000:]
    assert "sex=male AUC gap to rest" in done.stdout and "refused: champion unchanged" in done.stdout
