"""The fast scoring path: a native XGBoost booster plus its calibration, tiers and metadata.

`RiskScorer` is what the pyfunc model and the scoring core both call, so the two give the
same numbers. It needs no MLflow at scoring time; `load_scorer` reads a local model folder
or downloads one from an MLflow model URI first.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import mlflow.artifacts
import numpy as np
import xgboost as xgb
from scipy.special import expit

from models.estimators import booster_contributions
from models.metadata import META_FILE, ModelMetadata, read_metadata, write_metadata


class RiskScorer:
    """Calibrated dropout risk and additive explanations from a native XGBoost booster."""

    def __init__(self, booster: xgb.Booster, metadata: ModelMetadata):
        booster.set_param({"nthread": 1})
        self.booster = booster
        self.threads = 1
        self.metadata = metadata
        self.feature_names: tuple[str, ...] = metadata.feature_names
        self.calibration = metadata.calibration
        self.operating_threshold = metadata.operating_threshold
        # Highest tier first: (name, lowest risk that belongs to it).
        self.tiers: tuple[tuple[str, float], ...] = metadata.tier_cuts

    def with_threads(self, threads: int) -> "RiskScorer":
        """A copy of this scorer whose booster may use `threads` threads (for large batches)."""
        copy = RiskScorer(self.booster.copy(), self.metadata)
        copy.booster.set_param({"nthread": threads})
        copy.threads = threads
        return copy

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
        return expit(self.log_odds(X))

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature SHAP contributions on the calibrated log-odds scale, and the base value per row.

        contributions.sum(axis=1) + base equals log_odds(X) (up to float32 rounding).
        """
        raw = booster_contributions(self.booster, self._matrix(X), nthread=self.threads)
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


def save_scorer(out_dir: str | Path, booster: xgb.Booster, metadata: ModelMetadata) -> Path:
    """Write the booster (native UBJSON, never a pickle) and its metadata into `out_dir`."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(out_dir / metadata.booster_file)
    write_metadata(out_dir / META_FILE, metadata)
    return out_dir


def _find_meta(root: Path) -> Path:
    direct = root / META_FILE
    if direct.is_file():
        return direct
    found = sorted(root.rglob(META_FILE))
    if not found:
        raise FileNotFoundError(f"{root}: no {META_FILE} in this model folder")
    return found[0]


def _load_dir(root: Path, source: str) -> RiskScorer:
    meta_path = _find_meta(root)
    metadata = read_metadata(meta_path, source)
    booster = xgb.Booster()
    booster.load_model(meta_path.parent / metadata.booster_file)
    return RiskScorer(booster, metadata)


def load_scorer(model_uri_or_dir: str | Path, tracking_uri: str | None = None) -> RiskScorer:
    """Load a RiskScorer from a local model folder or an MLflow URI (models:/lapse-dropout@champion, runs:/...).

    Raises `models.metadata.MetadataError` (naming the model) for metadata this lapse cannot read.
    """
    local = Path(str(model_uri_or_dir))
    if local.exists():
        return _load_dir(local, str(model_uri_or_dir))
    with tempfile.TemporaryDirectory(prefix="lapse-model-") as tmp:
        path = mlflow.artifacts.download_artifacts(
            artifact_uri=str(model_uri_or_dir), dst_path=tmp, tracking_uri=tracking_uri,
            registry_uri=tracking_uri,
        )
        return _load_dir(Path(path), str(model_uri_or_dir))
