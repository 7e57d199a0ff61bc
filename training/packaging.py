"""The logged dropout model as MLflow packages it: self-contained code, pinned requirements, signature, example.

The pyfunc's entry (`models/mlflow_entry.py`) imports `models.pyfunc`, which imports only
`models/` and `config/`; both folders ship with the model as its code, and its requirements pin
the libraries they import at the versions training ran with. So `mlflow models predict` (or
`serve`) loads the model in a fresh environment made from its own requirements.txt, without lapse.
"""

from __future__ import annotations

from importlib.metadata import version as package_version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.types import ColSpec, Schema

from models.pyfunc import SCORER_ARTIFACT, output_columns

_ROOT = Path(__file__).resolve().parent.parent
MODEL_ENTRY = _ROOT / "models" / "mlflow_entry.py"
# The packages the pyfunc imports (models.pyfunc -> models.scorer -> models.metadata -> config).
MODEL_CODE = (_ROOT / "models", _ROOT / "config")
# Distributions those packages import, pinned to the versions installed here.
MODEL_DISTRIBUTIONS = ("mlflow", "xgboost-cpu", "numpy", "pandas", "scipy", "scikit-learn", "pydantic",
                       "pydantic-settings", "pyarrow", "numba", "llvmlite")
MODEL_ARTIFACT = "model"


def model_requirements() -> list[str]:
    """Pinned pip requirements of the logged model (xgboost-cpu falls back to xgboost when that is installed)."""
    pins = []
    for name in MODEL_DISTRIBUTIONS:
        try:
            pins.append(f"{name}=={package_version(name)}")
        except Exception:  # noqa: BLE001 - importlib.metadata.PackageNotFoundError; the GPU build is "xgboost"
            if name != "xgboost-cpu":
                raise
            pins.append(f"xgboost=={package_version('xgboost')}")
    return pins


def model_signature(feature_names: list[str]) -> ModelSignature:
    """Inputs: one double column per feature (NaN: not known); outputs: risk, log-odds, contributions."""
    return ModelSignature(
        inputs=Schema([ColSpec("double", f) for f in feature_names]),
        outputs=Schema([ColSpec("double", c) for c in output_columns(feature_names)]),
    )


def input_example(train_rows: pd.DataFrame, feature_names: list[str]) -> pd.DataFrame:
    """One row of training medians: no patient's values are stored with the model."""
    medians = train_rows[feature_names].median(numeric_only=True).reindex(feature_names).fillna(0.0)
    return pd.DataFrame([medians.to_numpy(dtype=np.float64)], columns=feature_names)


def log_dropout_model(scorer_dir: Path, feature_names: list[str], train_rows: pd.DataFrame,
                      registered_model: str) -> ModelInfo:
    """Log the pyfunc (code, scorer artifact, requirements) to the active run and register a version."""
    return mlflow.pyfunc.log_model(
        name=MODEL_ARTIFACT,
        python_model=str(MODEL_ENTRY),
        code_paths=[str(p) for p in MODEL_CODE],
        artifacts={SCORER_ARTIFACT: str(scorer_dir)},
        signature=model_signature(feature_names),
        input_example=input_example(train_rows, feature_names),
        pip_requirements=model_requirements(),
        registered_model_name=registered_model,
    )
