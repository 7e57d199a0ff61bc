"""Fit, calibrate and evaluate the three dropout models on a training table (no I/O, no tracking)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd
import xgboost as xgb

from config import TrainingConfig, XGBoostParams
from models.calibration import PlattCalibration, fit_platt
from models.estimators import booster_contributions, booster_margin, fit_xgboost, logistic_pipeline
from training.evaluation import POOLED, evaluate_by_slice, headline_slice, subgroup_report
from training.honesty import check_split_classes
from training.metrics import threshold_at_capacity
from training.splits import Split, temporal_split

BASELINE = "baseline_logistic"
USAGE = "usage_logistic"
XGBOOST = "xgboost"
CEILING = "ceiling"
MODEL_NAMES = (BASELINE, USAGE, XGBOOST)
LABEL = "dropout"
TRUTH = "true_probability"
# Holdout columns holding subgroup labels are named with this prefix (features may share the names).
GROUP_PREFIX = "subgroup."
# Holdout column numbering the test patients 0..n-1 (not their ids): the fairness gate resamples patients by it.
PATIENT_KEY = "patient_key"


@dataclass
class FittedModel:
    """One calibrated model's risks on validation and test, and its operating threshold."""

    name: str
    features: list[str]
    calibration: PlattCalibration
    validation_risk: np.ndarray
    test_risk: np.ndarray
    operating_threshold: float


@dataclass
class TrainingOutcome:
    """Everything a training run produced, ready to be logged."""

    feature_names: list[str]
    booster: xgb.Booster
    models: dict[str, FittedModel]
    split: Split
    holdout: pd.DataFrame
    metrics: dict[str, dict[str, dict[str, float]]]
    subgroups: pd.DataFrame
    gaps: dict[str, dict[str, dict[str, float]]]
    headline: str
    tiers: list[dict]
    counts: dict[str, float]
    windows: dict[str, dict[str, str]]
    test_contributions: np.ndarray
    test_base: np.ndarray
    train_rows: pd.DataFrame = field(repr=False, default=None)

    def headline_metrics(self, model: str = XGBOOST) -> dict[str, float]:
        """The headline slice's metrics of one model plus its largest subgroup TPR gap."""
        out = dict(self.metrics[model][self.headline])
        out["largest_tpr_gap"] = self.gaps[model][self.headline]["largest"]
        if CEILING in self.metrics:
            out["ceiling_auc"] = self.metrics[CEILING][self.headline]["auc"]
        return out


class BoosterFitter(Protocol):
    """Trains the boosted trees on a training table's train part, early-stopping on its validation part."""

    def __call__(self, table: pd.DataFrame, split: Split, feature_names: list[str], params: XGBoostParams,
                 seed: int) -> xgb.Booster:
        ...


def fit_local_booster(table: pd.DataFrame, split: Split, feature_names: list[str], params: XGBoostParams,
                      seed: int) -> xgb.Booster:
    """The boosted trees trained in this process (`fit_xgboost`) on the split's train and validation rows."""
    def part(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        chosen = table.iloc[rows]
        return (chosen[feature_names].to_numpy(dtype=np.float64, na_value=np.nan),
                chosen[LABEL].to_numpy(dtype=np.float64))

    return fit_xgboost(*part(split.train), *part(split.validation), feature_names, params, seed)


def _window(frame: pd.DataFrame) -> dict[str, str]:
    enrolled = frame["enrolled_at"]
    return {"enrolled_from": enrolled.min().isoformat(), "enrolled_to": enrolled.max().isoformat(),
            "patients": str(frame["patient_id"].nunique()), "rows": str(len(frame))}


def capacity_rows(validation_days: np.ndarray, headline_day: int) -> np.ndarray:
    """Validation rows that outreach capacity is counted on: the headline as-of day's, else all.

    Pooled over every as-of day, the top risks are almost all patients who have long since
    gone quiet at late days, and a threshold placed there flags almost nobody early on.
    """
    rows = np.asarray(validation_days) == headline_day
    return rows if rows.any() else np.ones(len(rows), dtype=bool)


def _fit_logistic_model(name: str, features: list[str], table: pd.DataFrame, split: Split, y: np.ndarray,
                        config: TrainingConfig) -> FittedModel:
    X = table[features].to_numpy(dtype=np.float64, na_value=np.nan)
    model = logistic_pipeline(config.logistic_c, config.logistic_max_iter).fit(X[split.train], y[split.train])
    calibration = fit_platt(model.decision_function(X[split.validation]), y[split.validation])
    val = calibration.risk(model.decision_function(X[split.validation]))
    test = calibration.risk(model.decision_function(X[split.test]))
    at = capacity_rows(table["as_of_day"].to_numpy()[split.validation], config.headline_day)
    threshold = threshold_at_capacity(val[at], config.operating_capacity)
    return FittedModel(name, features, calibration, val, test, threshold)


def fit_and_evaluate(table: pd.DataFrame, feature_names: list[str], baseline_features: list[str],
                     groups: pd.DataFrame, truth: np.ndarray | None = None,
                     config: TrainingConfig = TrainingConfig(),
                     fit_booster: BoosterFitter | None = None) -> TrainingOutcome:
    """Split, fit the baseline, usage-aware and XGBoost models, calibrate on validation, evaluate on test.

    `table` is a training table (patient_id, enrolled_at, as_of_day, features..., dropout);
    `groups` has patient_id and one text column per subgroup attribute; `truth`, when given,
    holds the simulator's true dropout probabilities aligned to the rows of `table`.
    `fit_booster` trains the boosted trees on the split this function makes: `fit_local_booster`
    when None, or e.g. on a Dask cluster (engines.training).
    """
    missing = [c for c in ("patient_id", "enrolled_at", "as_of_day", LABEL, *feature_names) if c not in table.columns]
    if missing:
        raise ValueError(f"training table lacks column(s): {', '.join(missing)}")
    table = table.reset_index(drop=True)
    y = table[LABEL].to_numpy(dtype=np.float64)
    if np.isnan(y).any():
        raise ValueError(f"training table has {int(np.isnan(y).sum())} row(s) without a dropout label")
    split = temporal_split(table, config.test_fraction, config.validation_fraction)
    check_split_classes(y, split, config.min_class_rows)
    days = table["as_of_day"].to_numpy()
    X = table[feature_names].to_numpy(dtype=np.float64, na_value=np.nan)

    models = {
        BASELINE: _fit_logistic_model(BASELINE, baseline_features, table, split, y, config),
        USAGE: _fit_logistic_model(USAGE, feature_names, table, split, y, config),
    }
    booster = (fit_booster or fit_local_booster)(table, split, feature_names, config.xgboost, config.seed)
    calibration = fit_platt(booster_margin(booster, X[split.validation]), y[split.validation])
    val_risk = calibration.risk(booster_margin(booster, X[split.validation]))
    test_risk = calibration.risk(booster_margin(booster, X[split.test]))
    at = capacity_rows(days[split.validation], config.headline_day)
    models[XGBOOST] = FittedModel(XGBOOST, feature_names, calibration, val_risk, test_risk,
                                  threshold_at_capacity(val_risk[at], config.operating_capacity))

    y_test, days_test = y[split.test], days[split.test]
    headline = headline_slice(days_test, config.headline_day)
    report_slices = tuple(dict.fromkeys((headline, POOLED)))
    test_groups = (
        table.loc[split.test, ["patient_id"]]
        .merge(groups, on="patient_id", how="left", validate="many_to_one")
        .drop(columns="patient_id")
        .fillna("unknown")
    )
    metrics, gaps, subgroup_tables = {}, {}, []
    for name, model in models.items():
        metrics[name] = evaluate_by_slice(y_test, model.test_risk, days_test, config)
        sub, gaps[name] = subgroup_report(y_test, model.test_risk, days_test, test_groups,
                                          model.operating_threshold, report_slices, config)
        subgroup_tables.append(sub.assign(model=name))
    if truth is not None:
        truth_test = np.asarray(truth, dtype=np.float64)[split.test]
        metrics[CEILING] = evaluate_by_slice(y_test, truth_test, days_test, config)
        for name in MODEL_NAMES:
            for slice_name, values in metrics[name].items():
                values["auc_to_ceiling"] = values["auc"] / metrics[CEILING][slice_name]["auc"]
        # The true risks at the XGBoost threshold: the subgroup gaps the data itself imposes.
        sub, gaps[CEILING] = subgroup_report(y_test, truth_test, days_test, test_groups,
                                             models[XGBOOST].operating_threshold, report_slices, config)
        subgroup_tables.append(sub.assign(model=CEILING))

    raw = booster_contributions(booster, X[split.test], nthread=config.xgboost.nthread)
    contribs = raw[:, :-1] * calibration.slope
    base = raw[:, -1] * calibration.slope + calibration.intercept

    tiers = [{"name": name, "min_risk": threshold_at_capacity(val_risk[at], share)} for name, share in config.tiers]
    tiers.append({"name": config.lowest_tier, "min_risk": 0.0})

    holdout = table.loc[split.test, ["as_of_day", *feature_names, LABEL]].reset_index(drop=True)
    holdout = pd.concat([holdout, test_groups.add_prefix(GROUP_PREFIX).reset_index(drop=True)], axis=1)
    holdout[PATIENT_KEY] = pd.factorize(table.loc[split.test, "patient_id"])[0]
    if truth is not None:
        holdout[TRUTH] = np.asarray(truth, dtype=np.float64)[split.test]

    parts = {"train": split.train, "validation": split.validation, "test": split.test}
    counts = {}
    for part, idx in parts.items():
        counts[f"{part}_rows"] = float(len(idx))
        counts[f"{part}_patients"] = float(table.loc[idx, "patient_id"].nunique())
        counts[f"{part}_dropout_rate"] = float(y[idx].mean())
    counts["best_iteration"] = float(booster.attr("best_iteration") or booster.num_boosted_rounds() - 1)
    return TrainingOutcome(
        feature_names=list(feature_names),
        booster=booster,
        models=models,
        split=split,
        holdout=holdout,
        metrics=metrics,
        subgroups=pd.concat(subgroup_tables, ignore_index=True),
        gaps=gaps,
        headline=headline,
        tiers=tiers,
        counts=counts,
        windows={part: _window(table.loc[idx]) for part, idx in parts.items()},
        test_contributions=contribs,
        test_base=base,
        train_rows=table.loc[split.train].reset_index(drop=True),
    )
