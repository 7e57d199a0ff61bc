"""The three dropout models: two logistic regressions and gradient-boosted trees, each giving a margin."""

from __future__ import annotations

import ctypes
import json

import numpy as np
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
# XGBoost's own handle on its library, and its check of a C API call's return code.
from xgboost.core import _LIB, _check_call

from config import XGBoostParams
from models.treeshap import for_booster

# Booster.predict's arguments for exact TreeSHAP contributions (type 2) of every tree.
_CONTRIBUTIONS = json.dumps({"type": 2, "training": False, "iteration_begin": 0, "iteration_end": 0,
                             "strict_shape": False}).encode()


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
    """Raw TreeSHAP contributions, one column per feature plus the bias column last, on `nthread` threads.

    Bit for bit what `booster.predict(xgb.DMatrix(X), pred_contribs=True)` gives, as float64: from the
    booster's tables (models/treeshap.py, built at the booster's first call), or, for a model those do not
    cover, rows of another width or infinite values, from XGBoost's C API with the same two calls and
    arguments as that predict (without the Python DMatrix class, whose set-up costs more than the SHAP of a
    single row; there the booster's own nthread parameter sets the threads).
    """
    X = np.ascontiguousarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array of rows, got shape {X.shape}")
    shap = for_booster(booster)
    if shap is not None and X.shape[1] == shap.n_features:
        with np.errstate(over="ignore"):
            rows = X.astype(np.float32)  # as XGBoost's DMatrix holds them
        # XGBoost refuses infinite values (and those beyond float32's range): its own error, from below.
        if not np.isinf(rows).any():
            return shap.contributions(rows, nthread)
    return _xgboost_contributions(booster, X, nthread)


def _xgboost_contributions(booster: xgb.Booster, X: np.ndarray, nthread: int) -> np.ndarray:
    """XGBoost's own contributions of the rows (C-contiguous float64), through its C API."""
    matrix = ctypes.c_void_p()
    _check_call(_LIB.XGDMatrixCreateFromDense(json.dumps(X.__array_interface__).encode(),
                                              json.dumps({"missing": float("nan"), "nthread": nthread}).encode(),
                                              ctypes.byref(matrix)))
    try:
        shape, dims, values = ctypes.POINTER(ctypes.c_uint64)(), ctypes.c_uint64(), ctypes.POINTER(ctypes.c_float)()
        _check_call(_LIB.XGBoosterPredictFromDMatrix(booster.handle, matrix, _CONTRIBUTIONS, ctypes.byref(shape),
                                                     ctypes.byref(dims), ctypes.byref(values)))
        # The values live in the booster's buffer for this thread until its next prediction: copied out now.
        return np.ctypeslib.as_array(values, shape=tuple(shape[i] for i in range(dims.value))).astype(np.float64)
    finally:
        _check_call(_LIB.XGDMatrixFree(matrix))
