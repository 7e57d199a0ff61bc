"""The tracked training job: data folder in, an MLflow run with metrics, artifacts and a candidate model out."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import asdict, dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import xgboost
from mlflow.models import ModelSignature
from mlflow.types import ColSpec, Schema

from config import DEFAULT_PATHS, FeatureConfig, LabelConfig, Paths, TrainingConfig
from features.point_in_time import specs_for
from models.metadata import META_FILE, ModelMetadata, write_metadata
from models.pyfunc import SCORER_ARTIFACT, output_columns
from models.scorer import save_scorer
from training.data import TableBuilder, local_training_table, read_true_probabilities
from training.artifacts import (
    catalog_records, feature_distributions, importance_by_level, importance_table, json_ready, write_beeswarm,
    write_calibration_plot,
)
from features.covariates import subgroup_frame
from training.fit import MODEL_NAMES, XGBOOST, fit_and_evaluate
from training.honesty import HonestyReport, review
from training.quality import DataQuality, feature_quality, usable_features
from training.tracking import connect, ensure_experiment, tracking_uri

log = logging.getLogger("lapse.training")

MODEL_ENTRY = Path(__file__).resolve().parent.parent / "models" / "mlflow_entry.py"
HOLDOUT_PATH = "holdout/test.parquet"
MODEL_ARTIFACT = "model"


@dataclass(frozen=True)
class TrainingData:
    """What training needs from a data folder, in memory."""

    table: pd.DataFrame
    patients: pd.DataFrame
    truth: np.ndarray | None
    data_end: pd.Timestamp
    feature_config: FeatureConfig


@dataclass(frozen=True)
class TrainingSummary:
    """What `lapse train` reports: where the run and model are, and the headline figures."""

    run_id: str
    experiment_id: str
    model_name: str
    model_version: str
    model_uri: str
    headline: str
    metrics: dict[str, dict[str, float]]
    counts: dict[str, float]
    quality: DataQuality | None = None
    honesty: HonestyReport | None = None


def load_training_data(data_dir: str | Path, feature_config: FeatureConfig = FeatureConfig(),
                       label_config: LabelConfig = LabelConfig(),
                       build_table: TableBuilder = local_training_table) -> TrainingData:
    """The folder's labelled training table (built by `build_table`) and, when given, its true probabilities."""
    data_dir = Path(data_dir)
    labelled = build_table(data_dir, feature_config, label_config)
    if len(labelled.table) == 0:
        raise ValueError(f"{data_dir}: no eligible, uncensored snapshots to train on")
    truth = read_true_probabilities(data_dir, labelled.table, label_config)
    return TrainingData(labelled.table, labelled.patients, truth, labelled.data_end, feature_config)


def feature_sets(feature_config: FeatureConfig) -> tuple[list, list[str], list[str]]:
    """Catalog specs, all model features, and the baseline model's features (patient-level baseline factors).

    The baseline model also gets days since enrolment, since rows of every as-of day are pooled.
    """
    specs = list(specs_for(feature_config))
    names = [s.name for s in specs]
    baseline = [s.name for s in specs if s.level == "patient" and s.group == "baseline"]
    if "days_since_enrolment" in names:
        baseline.append("days_since_enrolment")
    return specs, names, baseline


def _model_meta(outcome, specs, data: TrainingData, config: TrainingConfig,
                label_config: LabelConfig) -> ModelMetadata:
    model = outcome.models[XGBOOST]
    return ModelMetadata(
        feature_names=outcome.feature_names,
        catalog=catalog_records(specs),
        calibration=model.calibration,
        operating_threshold=model.operating_threshold,
        operating_capacity=config.operating_capacity,
        tiers=outcome.tiers,
        trigger_tier=outcome.tiers[0]["name"],
        label=label_config,
        as_of_days=data.feature_config.as_of_days,
        program=data.feature_config.program,
        events=data.feature_config.events,
        training_window={**outcome.windows, "data_end": data.data_end.isoformat()},
        headline_slice=outcome.headline,
        headline_metrics=json_ready(outcome.headline_metrics()),
        best_iteration=int(outcome.counts["best_iteration"]),
        seed=config.seed,
        versions={"lapse": package_version("lapse"), "xgboost": xgboost.__version__},
    )


def _write_artifacts(out: Path, outcome, specs, meta: ModelMetadata, config: TrainingConfig) -> None:
    catalog = catalog_records(specs)
    (out / "explanations").mkdir()
    (out / "calibration").mkdir()
    (out / "holdout").mkdir()
    names = outcome.feature_names
    importance_table(outcome.test_contributions, names, catalog).to_csv(
        out / "explanations" / "shap_importance.csv", index=False)
    importance_by_level(outcome.test_contributions, names, catalog).to_csv(
        out / "explanations" / "shap_importance_by_level.csv", index=False)
    rng = np.random.default_rng(config.seed)
    n = len(outcome.test_base)
    rows = np.sort(rng.choice(n, size=min(n, config.shap_plot_rows), replace=False))
    X_test = outcome.holdout[names].to_numpy(dtype=np.float64, na_value=np.nan)
    labels = [{c["name"]: c["label"] for c in catalog}.get(f, f) for f in names]
    write_beeswarm(out / "explanations" / "shap_beeswarm.png", outcome.test_contributions[rows],
                   outcome.test_base[rows], X_test[rows], labels)

    days = outcome.holdout["as_of_day"].to_numpy()
    y = outcome.holdout["dropout"].to_numpy(dtype=np.float64)
    mask = np.ones(len(days), bool) if outcome.headline == "pooled" else days == int(outcome.headline[3:])
    curves = {name: (y[mask], outcome.models[name].test_risk[mask]) for name in MODEL_NAMES}
    write_calibration_plot(out / "calibration" / "calibration_test.png", curves, config.ece_bins,
                           f"Calibration on the temporal test set ({outcome.headline})")

    metrics_doc = {
        "headline_slice": outcome.headline,
        "counts": outcome.counts,
        "models": outcome.metrics,
        "tpr_gaps": outcome.gaps,
        "operating_thresholds": {name: m.operating_threshold for name, m in outcome.models.items()},
        "tiers": outcome.tiers,
    }
    (out / "metrics.json").write_text(json.dumps(json_ready(metrics_doc), indent=2))
    outcome.subgroups.to_csv(out / "subgroups.csv", index=False)
    (out / "features.json").write_text(json.dumps(catalog, indent=2))
    (out / "feature_distributions.json").write_text(json.dumps(
        json_ready(feature_distributions(outcome.train_rows, names, config.distribution_bins)), indent=2))
    write_metadata(out / META_FILE, meta)
    outcome.holdout.to_parquet(out / HOLDOUT_PATH, index=False)


def _params(data: TrainingData, config: TrainingConfig, label_config: LabelConfig, n_features: int) -> dict:
    fingerprint = int(pd.util.hash_pandas_object(data.table, index=False).sum()) & 0xFFFFFFFFFFFF
    params = {
        "seed": config.seed,
        "test_fraction": config.test_fraction,
        "validation_fraction": config.validation_fraction,
        "headline_day": config.headline_day,
        "operating_capacity": config.operating_capacity,
        "as_of_days": ",".join(str(d) for d in data.feature_config.as_of_days),
        "horizon_days": label_config.horizon_days,
        "label_definition": label_config.definition,
        "engaged_within_days": label_config.engaged_within_days,
        "n_features": n_features,
        "data_end": data.data_end.isoformat(),
        "data_fingerprint": f"{fingerprint:012x}",
        "simulated_truth": data.truth is not None,
    }
    params.update({f"xgboost.{k}": v for k, v in asdict(config.xgboost).items()})
    return params


def _signature(feature_names: list[str]):
    return ModelSignature(
        inputs=Schema([ColSpec("double", f) for f in feature_names]),
        outputs=Schema([ColSpec("double", c) for c in output_columns(feature_names)]),
    )


def _input_example(train_rows: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    # Training medians, not any one patient's values, so no patient data is stored with the model.
    medians = train_rows[feature_names].median(numeric_only=True).reindex(feature_names).fillna(0.0)
    return pd.DataFrame([medians.to_numpy(dtype=np.float64)], columns=feature_names)


def _requirements() -> list[str]:
    return [f"mlflow=={mlflow.__version__}", f"xgboost-cpu=={xgboost.__version__}",
            f"numpy=={np.__version__}", f"pandas=={pd.__version__}"]


def log_training_run(data: TrainingData, config: TrainingConfig = TrainingConfig(),
                     label_config: LabelConfig = LabelConfig(), tracking: str | None = None,
                     paths: Paths = DEFAULT_PATHS, run_name: str | None = None,
                     fit_booster=None) -> TrainingSummary:
    """Fit and evaluate on `data`, log everything to MLflow, register the model, then point `candidate` at it.

    The alias moves last: a run that fails on the way leaves every alias where it was.
    `fit_booster` replaces the boosted-tree fit (see `fit_and_evaluate`).
    """
    uri = tracking or tracking_uri(paths)
    client = connect(uri, paths)
    experiment_id = ensure_experiment(client, config.experiment, uri, paths)
    specs, names, baseline = feature_sets(data.feature_config)
    quality = feature_quality(data.table, names)
    specs, names, baseline = usable_features(specs, baseline, quality)
    groups = subgroup_frame(data.patients, config.subgroups, config.age_bands)
    outcome = fit_and_evaluate(data.table, names, baseline, groups, data.truth, config, fit_booster)
    honesty = review(data.table, outcome.split, names, outcome.headline,
                     {m: outcome.metrics[m][outcome.headline]["auc"] for m in MODEL_NAMES})
    meta = _model_meta(outcome, specs, data, config, label_config)

    with mlflow.start_run(experiment_id=experiment_id, run_name=run_name or "train") as run:
        mlflow.set_tags({"lapse.kind": "training", "lapse.headline_slice": outcome.headline})
        mlflow.log_params(_params(data, config, label_config, len(names)))
        mlflow.log_metrics({**outcome.flat_metrics(), **honesty.metrics()})
        mlflow.set_tags(honesty.tags())
        mlflow.log_dict(quality.as_record(), "data_quality.json")
        with tempfile.TemporaryDirectory(prefix="lapse-train-") as tmp:
            out = Path(tmp) / "run"
            out.mkdir()
            _write_artifacts(out, outcome, specs, meta, config)
            mlflow.log_artifacts(str(out))
            scorer_dir = save_scorer(Path(tmp) / SCORER_ARTIFACT, outcome.booster, meta)
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT,
                python_model=str(MODEL_ENTRY),
                artifacts={SCORER_ARTIFACT: str(scorer_dir)},
                signature=_signature(names),
                input_example=_input_example(outcome.train_rows, names),
                pip_requirements=_requirements(),
                registered_model_name=config.registered_model,
            )
        version = str(info.registered_model_version)
        headline = outcome.headline_metrics()
        for key in ("auc", "ece", "largest_tpr_gap"):
            client.set_model_version_tag(config.registered_model, version, f"test.{key}", f"{headline[key]:.6f}")
        client.set_model_version_tag(config.registered_model, version, "headline_slice", outcome.headline)
        run_id = run.info.run_id
    client.set_registered_model_alias(config.registered_model, config.candidate_alias, version)
    log.info("run %s registered %s version %s as %s", run_id, config.registered_model, version,
             config.candidate_alias)
    return TrainingSummary(
        run_id=run_id,
        experiment_id=experiment_id,
        model_name=config.registered_model,
        model_version=version,
        model_uri=f"models:/{config.registered_model}/{version}",
        headline=outcome.headline,
        metrics={name: outcome.metrics[name][outcome.headline] for name in outcome.metrics},
        counts=outcome.counts,
        quality=quality,
        honesty=honesty,
    )


def run_training(data_dir: str | Path, config: TrainingConfig = TrainingConfig(),
                 feature_config: FeatureConfig = FeatureConfig(), label_config: LabelConfig = LabelConfig(),
                 tracking: str | None = None, paths: Paths = DEFAULT_PATHS) -> TrainingSummary:
    """The whole training job on one data folder."""
    data = load_training_data(data_dir, feature_config, label_config)
    return log_training_run(data, config, label_config, tracking, paths)
