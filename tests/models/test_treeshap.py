"""lapse's SHAP tables give exactly XGBoost's `pred_contribs` numbers (np.array_equal on the float32 values, never a
tolerance) for trees of depth 1 to 6, with missing values, features repeated along a path, both default directions,
base scores other than 0.5, single-leaf trees, 1 to 100 trees, on one and two threads, in batches and one row at a
time; models the tables do not cover are answered by XGBoost."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

import models.estimators as estimators
from models.estimators import booster_contributions
from models.treeshap import TreeShap, for_booster


def _data(n: int, features: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    X[rng.random(X.shape) < 0.2] = np.nan
    # Missingness that matters, so that some splits send missing values left and others right.
    signal = np.nan_to_num(X[:, 0]) + np.where(np.isnan(X[:, 1]), 1.0, X[:, 1]) * np.nan_to_num(X[:, -1])
    return X, (signal + rng.normal(size=n) > 0.3).astype(float)


def _train(depth: int, rounds: int, features: int, seed: int, **params) -> xgb.Booster:
    X, y = _data(3_000, features, seed)
    return xgb.train({"objective": "binary:logistic", "max_depth": depth, "nthread": 1, "seed": seed,
                      "tree_method": "hist", **params}, xgb.DMatrix(X, label=y), num_boost_round=rounds)


def _rows(booster: xgb.Booster, n: int, seed: int) -> np.ndarray:
    """Test rows: random values, values equal to split conditions and just below them, missing values."""
    rng = np.random.default_rng(seed)
    features = booster.num_features()
    X = rng.normal(size=(n, features)) * 1.5
    for tree in _trees(booster):
        for node, left in enumerate(tree["left_children"]):
            if left != -1:
                rows = rng.integers(0, n, size=max(1, n // 50))
                cond = np.float32(tree["split_conditions"][node])
                X[rows, tree["split_indices"][node]] = cond if rng.random() < 0.5 else np.nextafter(cond, -np.inf)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[0] = np.nan
    return X


def _xgboost(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(X, nthread=1), pred_contribs=True, validate_features=False).astype(np.float64)


def _trees(booster: xgb.Booster) -> list[dict]:
    return json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]


def _repeats_on_a_path(booster: xgb.Booster) -> bool:
    """Whether some tree splits on one feature twice along a path from its root."""
    for tree in _trees(booster):
        left, right, feature = tree["left_children"], tree["right_children"], tree["split_indices"]
        stack = [(0, ())]
        while stack:
            node, above = stack.pop()
            if left[node] == -1:
                continue
            if feature[node] in above:
                return True
            stack += [(left[node], above + (feature[node],)), (right[node], above + (feature[node],))]
    return False


MODELS = {
    # name: (depth, rounds, features, extra parameters)
    "depth 1, one tree": (1, 1, 6, {}),
    "depth 2, 100 trees, base_score 0.3": (2, 100, 8, {"base_score": 0.3}),
    "depth 3, few features (repeated on paths)": (3, 40, 3, {}),
    "depth 4, 75 trees, as lapse's": (4, 75, 67, {}),
    "depth 5, base_score 0.8": (5, 30, 10, {"base_score": 0.8}),
    "depth 6, few features": (6, 20, 4, {}),
    "depth 6, many features": (6, 12, 40, {"eta": 0.5}),
}


@pytest.fixture(scope="module", params=list(MODELS))
def model(request) -> tuple[str, xgb.Booster]:
    depth, rounds, features, params = MODELS[request.param]
    return request.param, _train(depth, rounds, features, seed=len(request.param), **params)


def test_the_models_have_what_they_should(model) -> None:
    name, booster = model
    assert for_booster(booster) is not None  # the tables, not XGBoost, answer
    defaults = {d for tree in _trees(booster) for d, left in zip(tree["default_left"], tree["left_children"])
                if left != -1}
    assert defaults == {0, 1} or name.startswith("depth 1")  # both default directions
    if "few features" in name:
        assert _repeats_on_a_path(booster)


@pytest.mark.parametrize("threads", [1, 2])
def test_contributions_are_xgboosts_bit_for_bit(model, threads: int) -> None:
    _, booster = model
    X = _rows(booster, 3_000, seed=threads)
    want = _xgboost(booster, X)
    # The tables alone (without their check against XGBoost at build, which would hand a difference to XGBoost).
    tables = TreeShap(bytes(booster.save_raw("ubj"))).contributions(X, nthread=threads)
    assert np.array_equal(tables, want)
    got = booster_contributions(booster, X, nthread=threads)
    assert got.dtype == np.float64 and got.shape == want.shape
    assert np.array_equal(got, want)


def test_one_row_at_a_time(model) -> None:
    _, booster = model
    X = _rows(booster, 300, seed=7)
    want = _xgboost(booster, X)
    for i in range(len(X)):
        assert np.array_equal(booster_contributions(booster, X[i:i + 1]), want[i:i + 1])


def test_single_leaf_trees_and_base_margin_of_a_regression() -> None:
    """Trees that cannot split (a huge min_split_loss) after ordinary ones; a squared-error model's base score."""
    X, y = _data(2_000, 5, seed=11)
    first = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "base_score": 0.65},
                      xgb.DMatrix(X, label=y), num_boost_round=5)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "min_split_loss": 1e9},
                        xgb.DMatrix(X, label=y), num_boost_round=4, xgb_model=first)
    assert sum(tree["left_children"] == [-1] for tree in _trees(booster)) == 4
    regression = xgb.train({"objective": "reg:squarederror", "max_depth": 4, "nthread": 1, "base_score": -1.7},
                           xgb.DMatrix(X, label=y * 3), num_boost_round=10)
    for b in (booster, regression):
        assert for_booster(b) is not None
        rows = _rows(b, 1_000, seed=3)
        assert np.array_equal(booster_contributions(b, rows, nthread=2), _xgboost(b, rows))


def test_booster_contributions_does_not_call_xgboost_for_a_covered_model(monkeypatch) -> None:
    booster = _train(3, 5, 6, seed=1)
    X = _rows(booster, 50, seed=1)
    want = _xgboost(booster, X)

    def refuse(*args):
        raise AssertionError("XGBoost was asked")

    monkeypatch.setattr(estimators, "_xgboost_contributions", refuse)
    assert np.array_equal(booster_contributions(booster, X), want)


def test_copies_share_the_tables_and_further_training_rebuilds_them() -> None:
    X, y = _data(1_000, 5, seed=2)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, xgb.DMatrix(X, label=y), 3)
    shap = for_booster(booster)
    assert for_booster(booster) is shap and for_booster(booster.copy()) is shap
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1}, xgb.DMatrix(X, label=y), 2,
                        xgb_model=booster)
    assert for_booster(booster) is not shap
    rows = _rows(booster, 200, seed=4)
    assert np.array_equal(booster_contributions(booster, rows), _xgboost(booster, rows))


def test_dropout_tree_weights() -> None:
    """DART (tree weights from dropout, now gbtree's rate_drop): each tree's vector scaled as XGBoost scales it."""
    X, y = _data(2_000, 6, seed=4)
    booster = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1, "rate_drop": 0.3},
                        xgb.DMatrix(X, label=y), 30)
    assert len(set(json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["weight_drop"])) > 1
    assert for_booster(booster) is not None
    rows = _rows(booster, 2_000, seed=6)
    assert np.array_equal(booster_contributions(booster, rows, nthread=2), _xgboost(booster, rows))


def test_models_the_tables_do_not_cover_are_answered_by_xgboost() -> None:
    X, y = _data(1_000, 5, seed=3)
    multiclass = xgb.train({"objective": "multi:softprob", "num_class": 3, "max_depth": 3, "nthread": 1},
                           xgb.DMatrix(X, label=(y + (X[:, 2] > 0)).astype(float)), 3)
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(5)])
    frame["f4"] = pd.Categorical(np.where(y > 0, "a", np.where(X[:, 4] > 0, "b", "c")))
    categorical = xgb.train({"objective": "binary:logistic", "max_depth": 3, "nthread": 1, "max_cat_to_onehot": 1},
                            xgb.DMatrix(frame, label=y, enable_categorical=True), 5)
    assert 1 in {t for tree in _trees(categorical) for t in tree["split_type"]}
    assert TreeShap.build(multiclass) is None and TreeShap.build(categorical) is None
    rows = _rows(multiclass, 100, seed=5)
    assert np.array_equal(booster_contributions(multiclass, rows), _xgboost(multiclass, rows))


def test_infinite_values_get_xgboosts_error() -> None:
    booster = _train(3, 5, 6, seed=2)
    for value in (np.inf, -np.inf, 1e300, 3.5e38):  # the last two are infinite as float32
        X = _rows(booster, 5, seed=8)
        X[2, 1] = value
        with pytest.raises(xgb.core.XGBoostError, match="inf"):
            booster_contributions(booster, X)
