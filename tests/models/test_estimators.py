"""The boosted trees' contributions: XGBoost's C API called directly gives exactly what `Booster.predict` with
`pred_contribs=True` gives, for single rows and batches, on one thread and on two, and a bad input is refused
with a clear error."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb

from models.estimators import booster_contributions


@pytest.fixture(scope="module")
def booster() -> xgb.Booster:
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2_000, 12))
    X[rng.random(X.shape) < 0.15] = np.nan
    X[rng.random(X.shape) < 0.15] = 0.0
    y = (np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, 3]) * np.isnan(X[:, 5]) + rng.normal(size=len(X)) > 0)
    return xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1, "seed": 0},
                     xgb.DMatrix(X, label=y.astype(float)), num_boost_round=40)


def _rows(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 12)) * 2
    X[rng.random(X.shape) < 0.2] = np.nan
    X[rng.random(X.shape) < 0.2] = 0.0  # a value, not a missing one (counts are often 0)
    return X


def _predict(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True, validate_features=False)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", [1, 7, 1_000])
def test_contributions_equal_xgboosts_predict_bit_for_bit(booster: xgb.Booster, threads: int, n: int) -> None:
    booster = booster.copy()
    booster.set_param({"nthread": threads})
    X = _rows(n, seed=n + threads)
    got = booster_contributions(booster, X)
    want = _predict(booster, X)
    assert got.shape == (n, 13) and got.dtype == np.float64
    assert np.array_equal(got, want.astype(np.float64))
    # Exact TreeSHAP: every row's contributions add up to its margin (up to float32 rounding).
    margin = booster.predict(xgb.DMatrix(X), output_margin=True)
    assert np.allclose(got.sum(axis=1), margin, atol=1e-4)


def test_contributions_take_any_numeric_layout(booster: xgb.Booster) -> None:
    X = _rows(50, seed=9)
    want = booster_contributions(booster, X)
    assert np.array_equal(booster_contributions(booster, np.asfortranarray(X)), want)
    wide = np.repeat(X, 2, axis=1)[:, ::2]  # a strided view
    assert np.array_equal(booster_contributions(booster, wide), want)
    assert np.array_equal(booster_contributions(booster, X[:, :].tolist()), want)


def test_each_call_returns_its_own_rows(booster: xgb.Booster) -> None:
    first, second = _rows(3, seed=1), _rows(5, seed=2)
    a = booster_contributions(booster, first)
    b = booster_contributions(booster, second)
    # The result is copied out of XGBoost's buffer: the next call does not change it.
    assert np.array_equal(a, _predict(booster, first))
    assert np.array_equal(b, _predict(booster, second))


def test_bad_shapes_are_refused_with_the_shape(booster: xgb.Booster) -> None:
    with pytest.raises(ValueError, match=r"2-D array of rows, got shape \(12,\)"):
        booster_contributions(booster, np.zeros(12))
    # More columns than the booster knows: XGBoost's own error, raised, not a crash.
    with pytest.raises(xgb.core.XGBoostError, match="columns"):
        booster_contributions(booster, np.zeros((2, 20)))
