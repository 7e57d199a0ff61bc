"""The tracked training job: data folder in, a parent MLflow run (nested run per model) and a candidate model out."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import xgboost

from config import DEFAULT_PATHS, FeatureConfig, LabelConfig, Paths, TrainingConfig
from features.point_in_time import specs_for
from features.validate import load_cohort
from models.metadata import META_FILE, ModelMetadata, write_metadata
from models.pyfunc import SCORER_ARTIFACT
from models.scorer import save_scorer
from training.artifacts import (
    catalog_records, feature_distributions, importance_by_level, importance_table, json_ready, write_beeswarm,
    write_calibration_plot,
)
from features.covariates import subgroup_frame
from training.data import TableBuilder, local_training_table, read_true_probabilities
from training.fit import MODEL_NAMES, XGBOOST, fit_and_evaluate
from training.honesty import HonestyReport, review
from training.packaging import log_dropout_model
from training.quality import DataQuality, feature_quality, usable_features
from training.runs import (
    digest_of, log_datasets, log_model_run, log_survival_run, parent_metrics, start_parent_run,
)
from training.survival import SurvivalOutcome, TooFewOutcomes, fit_time_to_dropout, observed_stops
from training.tracking import (
    connect, ensure_experiment, refuse_mlflow_default_store, tag_skipped, tracking_uri,
)

log = logging.getLogger("lapse.training")

HOLDOUT_PATH = "holdout/test.parquet"
REGISTERED_DESCRIPTION = (
    "Risk that a patient of a digital mental health program drops out within the label horizon, with "
    "per-feature SHAP contributions on the calibrated log-odds. Input: one row of lapse features per patient "
    "(NaN: not known); output: risk, log_odds, contrib_<feature>, contrib_base. Versions are candidates from "
    "`lapse train`; `lapse promote` moves the champion alias after the promotion gates."
)


@dataclass(frozen=True)
class TrainingData:
    """What training needs from a data folder, in memory."""

    table: pd.DataFrame
    patients: pd.DataFrame
    truth: np.ndarray | None
    data_end: pd.Timestamp
    feature_config: FeatureConfig
    # Where the table came from (the data folder or features file): the dataset source MLflow records.
    source: str | None = None


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
    # The time-to-dropout verdict: "use it: ...", "do not use it: ..." or why it was not fitted.
    time_to_dropout: str = ""


def load_training_data(data_dir: str | Path, feature_config: FeatureConfig = FeatureConfig(),
                       label_config: LabelConfig = LabelConfig(),
                       build_table: TableBuilder = local_training_table) -> TrainingData:
    """The folder's labelled training table (built by `build_table`) and, when given, its true probabilities."""
    data_dir = Path(data_dir)
    labelled = build_table(data_dir, feature_config, label_config)
    if len(labelled.table) == 0:
        raise ValueError(f"{data_dir}: no eligible, uncensored snapshots to train on")
    truth = read_true_probabilities(data_dir, labelled.table, label_config)
    return TrainingData(labelled.table, labelled.patients, truth, labelled.data_end, feature_config, str(data_dir))


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
        "data_fingerprint": digest_of(data.table),
        "simulated_truth": data.truth is not None,
    }
    params.update({f"xgboost.{k}": v for k, v in config.xgboost.model_dump().items()})
    return params


def fit_survival(data: TrainingData, outcome, groups: pd.DataFrame, config: TrainingConfig
                 ) -> tuple[SurvivalOutcome | None, str]:
    """The time-to-dropout model when the data folder has the simulator's truth to judge it, else why not."""
    folder = Path(data.source) if data.source else None
    if folder is None or not (folder / "truth.parquet").is_file():
        return None, "not fitted: no truth table (simulated data only) to judge it against"
    cohort = load_cohort(folder, declared=data.feature_config.events)
    observed = observed_stops(cohort.patients, cohort.events, data.data_end, config.survival.quiet_days)
    truth = pd.read_parquet(folder / "truth.parquet")
    missing = [c for c in ("patient_id", "quit_day", "simulated_days") if c not in truth.columns]
    if missing:
        raise ValueError(f"{folder / 'truth.parquet'}: missing column(s) {', '.join(missing)}")
    table = data.table.reset_index(drop=True)
    try:
        survival = fit_time_to_dropout(table, outcome.feature_names, outcome.split, observed, truth, groups, config)
    except TooFewOutcomes as reason:
        return None, str(reason)
    return survival, survival.reason


def _verdict(survival: SurvivalOutcome | None, survival_note: str) -> str:
    """The time-to-dropout verdict in words: whether to use it and why, or why it was not fitted."""
    if survival is None:
        return survival_note
    return f"{'use it' if survival.use else 'do not use it'}: {survival_note}"


def _describe_run(outcome, chosen: str, survival: SurvivalOutcome | None, survival_note: str) -> str:
    m = outcome.headline_metrics(chosen)
    return (f"lapse training: baseline logistic, usage logistic and XGBoost dropout models (one nested run "
            f"each), judged on the temporal test set ({outcome.headline}: {chosen} AUC {m['auc']:.3f}, "
            f"ECE {m['ece']:.3f}). The chosen model ({chosen}) is logged here and registered as a candidate. "
            f"Time to dropout: {_verdict(survival, survival_note)}.")


def log_training_run(data: TrainingData, config: TrainingConfig = TrainingConfig(),
                     label_config: LabelConfig = LabelConfig(), tracking: str | None = None,
                     paths: Paths = DEFAULT_PATHS, run_name: str | None = None,
                     fit_booster=None) -> TrainingSummary:
    """Fit and evaluate on `data`, log a parent run with a nested run per model, register the chosen model.

    The alias moves last: a run that fails on the way leaves every alias where it was.
    `fit_booster` replaces the boosted-tree fit (see `fit_and_evaluate`).
    """
    uri = tracking or tracking_uri(paths)
    refuse_mlflow_default_store(uri)
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
    survival, survival_note = fit_survival(data, outcome, groups, config)
    chosen = XGBOOST
    description = _describe_run(outcome, chosen, survival, survival_note)

    parent, project = start_parent_run(client, experiment_id, run_name or "train", description)
    with parent as run:
        run_id = run.info.run_id
        mlflow.set_tags({"lapse.kind": "training", "lapse.headline_slice": outcome.headline,
                         "lapse.chosen_model": chosen,
                         "lapse.time_to_dropout": ("use" if survival.use else "do not use") if survival else "none",
                         "lapse.time_to_dropout_reason": survival_note})
        if project and project != run_id:
            client.set_tag(project, "lapse.training_run_id", run_id)
            mlflow.set_tag("lapse.mlflow_project_run_id", project)
        mlflow.log_params(_params(data, config, label_config, len(names)))
        log_datasets(data.table, outcome.holdout, data.source or "in-memory training table", digest_of(data.table))
        tag_skipped(parent_metrics(outcome, chosen))
        for name in outcome.metrics:
            log_model_run(outcome, name, chosen)
        mlflow.log_metrics(honesty.metrics())
        mlflow.set_tags(honesty.tags())
        mlflow.log_dict(quality.as_record(), "data_quality.json")
        with tempfile.TemporaryDirectory(prefix="lapse-train-") as tmp:
            out = Path(tmp) / "run"
            out.mkdir()
            _write_artifacts(out, outcome, specs, meta, config)
            mlflow.log_artifacts(str(out))
            if survival is not None:
                booster_path = Path(tmp) / "time_to_dropout.ubj"
                survival.booster.save_model(booster_path)
                log_survival_run(survival, config.survival.horizons, str(booster_path))
            scorer_dir = save_scorer(Path(tmp) / SCORER_ARTIFACT, outcome.booster, meta)
            info = log_dropout_model(scorer_dir, names, outcome.train_rows, config.registered_model)
        version = str(info.registered_model_version)
        headline = outcome.headline_metrics()
        for key in ("auc", "ece", "largest_tpr_gap"):
            client.set_model_version_tag(config.registered_model, version, f"test.{key}", f"{headline[key]:.6f}")
        client.set_model_version_tag(config.registered_model, version, "headline_slice", outcome.headline)
        client.update_registered_model(config.registered_model, description=REGISTERED_DESCRIPTION)
        client.update_model_version(config.registered_model, version, description=(
            f"{chosen} from training run {run_id}: AUC {headline['auc']:.3f}, ECE {headline['ece']:.3f}, "
            f"largest subgroup TPR gap {headline['largest_tpr_gap']:.3f} on the temporal test set "
            f"({outcome.headline}). Horizon {label_config.horizon_days} days, definition "
            f"'{label_config.definition}'."))
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
        time_to_dropout=_verdict(survival, survival_note),
    )


def run_training(data_dir: str | Path, config: TrainingConfig = TrainingConfig(),
                 feature_config: FeatureConfig = FeatureConfig(), label_config: LabelConfig = LabelConfig(),
                 tracking: str | None = None, paths: Paths = DEFAULT_PATHS) -> TrainingSummary:
    """The whole training job on one data folder."""
    data = load_training_data(data_dir, feature_config, label_config)
    return log_training_run(data, config, label_config, tracking, paths)
