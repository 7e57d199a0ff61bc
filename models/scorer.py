"""The fast scoring path: a native XGBoost booster plus its calibration, tiers and metadata.

`RiskScorer` is what the pyfunc model and the serving layer both call, so the two give the
same numbers. It needs no MLflow at scoring time; `load_scorer` reads a local model folder
or downloads one from an MLflow model URI first.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import xgboost as xgb

from models.calibration import PlattCalibration

META_FILE = "model_meta.json"
BOOSTER_FILE = "model.ubj"


class RiskScorer:
    """Calibrated dropout risk and additive explanations from a native XGBoost booster."""

    def __init__(self, booster: xgb.Booster, meta: dict):
        booster.set_param({"nthread": 1})
        self.booster = booster
        self.meta = meta
        self.feature_names: tuple[str, ...] = tuple(meta["feature_names"])
        self.calibration = PlattCalibration.from_dict(meta["calibration"])
        self.operating_threshold = float(meta["operating_threshold"])
        # Highest tier first: (name, lowest risk that belongs to it).
        self.tiers: tuple[tuple[str, float], ...] = tuple(
            (str(t["name"]), float(t["min_risk"])) for t in meta["tiers"]
        )

    def _matrix(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 1:
            X = X[None, :]
        if X.ndim != 2 or X.shape[1] != len(self.feature_names):
            raise ValueError(
                f"expected a 2-D array with {len(self.feature_names)} feature columns, got shape {X.shape}"
            )
        return X

    def margin(self, X: np.ndarray) -> np.ndarray:
        """Raw (uncalibrated) log-odds of the booster."""
        out = self.booster.inplace_predict(self._matrix(X), predict_type="margin", validate_features=False)
        return np.asarray(out, dtype=np.float64).reshape(-1)

    def log_odds(self, X: np.ndarray) -> np.ndarray:
        """Calibrated log-odds of dropout."""
        return self.calibration.log_odds(self.margin(X))

    def predict_risk(self, X: np.ndarray) -> np.ndarray:
        """Calibrated probability of dropout within the horizon, one per row of X."""
        return self.calibration.risk(self.margin(X))

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature SHAP contributions on the calibrated log-odds scale, and the base value per row.

        contributions.sum(axis=1) + base equals log_odds(X) (up to float32 rounding).
        """
        matrix = xgb.DMatrix(self._matrix(X), nthread=1)
        raw = np.asarray(self.booster.predict(matrix, pred_contribs=True, validate_features=False),
                         dtype=np.float64)
        slope, intercept = self.calibration.slope, self.calibration.intercept
        return raw[:, :-1] * slope, raw[:, -1] * slope + intercept

    def tier(self, risk: np.ndarray) -> np.ndarray:
        """Tier name of each risk (the highest tier whose cut-point it reaches)."""
        return tier_names(risk, self.tiers)


def tier_names(risk: np.ndarray, tiers: tuple[tuple[str, float], ...]) -> np.ndarray:
    """Tier name of each risk: the highest of `tiers` ((name, min_risk), highest first) whose cut-point it reaches."""
    risk = np.asarray(risk, dtype=np.float64)
    names = np.full(risk.shape, tiers[-1][0], dtype=object)
    for name, cut in reversed(tiers[:-1]):
        names[risk >= cut] = name
    return names


def save_scorer(out_dir: str | Path, booster: xgb.Booster, meta: dict) -> Path:
    """Write the booster (native UBJSON, never a pickle) and its metadata into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(out_dir / BOOSTER_FILE)
    (out_dir / META_FILE).write_text(json.dumps({**meta, "booster_file": BOOSTER_FILE}, indent=2, sort_keys=True))
    return out_dir


def _find_meta(root: Path) -> Path:
    direct = root / META_FILE
    if direct.is_file():
        return direct
    found = sorted(root.rglob(META_FILE))
    if not found:
        raise FileNotFoundError(f"{root}: no {META_FILE} in this model folder")
    return found[0]


def _load_dir(root: Path) -> RiskScorer:
    meta_path = _find_meta(root)
    meta = json.loads(meta_path.read_text())
    booster = xgb.Booster()
    booster.load_model(meta_path.parent / meta.get("booster_file", BOOSTER_FILE))
    return RiskScorer(booster, meta)


def load_scorer(model_uri_or_dir: str | Path, tracking_uri: str | None = None) -> RiskScorer:
    """Load a RiskScorer from a local model folder or an MLflow URI (models:/lapse-dropout@champion, runs:/...)."""
    local = Path(str(model_uri_or_dir))
    if local.exists():
        return _load_dir(local)
    import mlflow.artifacts

    with tempfile.TemporaryDirectory(prefix="lapse-model-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=str(model_uri_or_dir), dst_path=tmp, tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        return _load_dir(Path(path))
