"""The three dropout models: two logistic regressions and gradient-boosted trees, each giving a margin."""

from __future__ import annotations

import numpy as np
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from config import XGBoostParams


def logistic_pipeline(c: float = 1.0, max_iter: int = 2000) -> Pipeline:
    """Median imputation with missing-value indicators, standardisation, L2 logistic regression."""
    return make_pipeline(
        SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
        StandardScaler(),
        LogisticRegression(C=c, max_iter=max_iter),
    )


def booster_params(params: XGBoostParams, seed: int, nthread: int) -> dict:
    """xgboost.train's parameters for `params`: the one source for the local and the Dask fit."""
    return {
        "objective": "binary:logistic",
        "eval_metric": "logloss",
        "tree_method": "hist",
        "learning_rate": params.learning_rate,
        "max_depth": params.max_depth,
        "min_child_weight": params.min_child_weight,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "reg_lambda": params.reg_lambda,
        "seed": seed,
        "nthread": nthread,
    }


def best_rounds(booster: xgb.Booster) -> xgb.Booster:
    """Only the rounds up to early stopping's best one, which is recorded as the attribute best_iteration."""
    best = booster.best_iteration
    sliced = booster[: best + 1]
    sliced.set_attr(best_iteration=str(best))
    return sliced


def fit_xgboost(X_train: np.ndarray, y_train: np.ndarray, X_val: np.ndarray, y_val: np.ndarray,
                feature_names: list[str], params: XGBoostParams = XGBoostParams(), seed: int = 0) -> xgb.Booster:
    """Train boosted trees with early stopping on validation log-loss; keep only the best rounds."""
    train = xgb.DMatrix(X_train, label=y_train, feature_names=feature_names, nthread=params.nthread)
    val = xgb.DMatrix(X_val, label=y_val, feature_names=feature_names, nthread=params.nthread)
    booster = xgb.train(
        booster_params(params, seed, params.nthread),
        train,
        num_boost_round=params.max_rounds,
        evals=[(val, "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    return best_rounds(booster)


def booster_margin(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    """Raw log-odds of the booster for rows of X."""
    return np.asarray(booster.inplace_predict(X, predict_type="margin", validate_features=False), dtype=np.float64)


def booster_contributions(booster: xgb.Booster, X: np.ndarray, nthread: int = 1) -> np.ndarray:
    """Raw TreeSHAP contributions, one column per feature plus the bias column last."""
    matrix = xgb.DMatrix(X, nthread=nthread)
    return np.asarray(booster.predict(matrix, pred_contribs=True, validate_features=False), dtype=np.float64)
