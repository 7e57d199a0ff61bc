"""A model version loaded for scoring: its scorer, metadata, tiers and support trigger, checked before use.

`load_version` is the one way a registered version becomes a `LoadedModel`, for the service and for
batch scoring alike. A version whose metadata, features, tiers or predictions are unusable is
refused with `ModelRefused`, whose message names the version and never holds patient data.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import mlflow
import numpy as np
from mlflow import MlflowClient
from scipy.special import expit

from config import FeatureConfig, LabelConfig
from features.catalog import FEATURES, FeatureSpec
from features.point_in_time import specs_for
from models.metadata import MetadataError, ModelMetadata
from models.scorer import RiskScorer, load_scorer, tier_names

_CATALOG = {spec.name: spec for spec in FEATURES}
# From this many rows on, contributions are computed with the multi-threaded copy of the booster.
BATCH_ROWS = 64
# The feature that says whether the patient has a coach (the support decision's wording depends on it).
COACH_FEATURE = "human_support"


class ModelRefused(Exception):
    """A model version cannot be used; the message says why (never patient data)."""


@dataclass(frozen=True)
class ModelRef:
    """Which model version produced an answer."""

    name: str
    version: str


@dataclass(frozen=True)
class LoadedModel:
    """One loaded, checked model version and everything needed to answer with it."""

    name: str
    version: str
    alias: str
    scorer: RiskScorer
    # Highest tier first: (name, lowest risk in the tier); the last tier starts at 0.
    tiers: tuple[tuple[str, float], ...]
    # Risk at or above which human support is triggered.
    trigger_risk: float
    loaded_at: datetime
    specs: tuple[FeatureSpec, ...] = field(repr=False)
    # A copy of the scorer for large batches, allowed more than one thread.
    batch_scorer: RiskScorer | None = field(default=None, repr=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Model features in the model's column order."""
        return self.scorer.feature_names

    @property
    def metadata(self) -> ModelMetadata:
        """The model's metadata (model_meta.json)."""
        return self.scorer.metadata

    @cached_property
    def ref(self) -> ModelRef:
        """The model's name and version, as answers carry them."""
        return ModelRef(self.name, self.version)

    @cached_property
    def feature_config(self) -> FeatureConfig:
        """The feature settings the model was trained with (the program's recommended pace)."""
        return self.metadata.feature_config()

    @property
    def label_config(self) -> LabelConfig:
        """The dropout definition the model was trained for."""
        return self.metadata.label

    @cached_property
    def catalog_columns(self) -> np.ndarray:
        """Where each model column is in the rows `compute_features_one` gives (catalog order)."""
        order = {spec.name: j for j, spec in enumerate(specs_for(self.feature_config))}
        return np.array([order[name] for name in self.feature_names], dtype=np.intp)

    @cached_property
    def horizon_days(self) -> int:
        """The prediction horizon the model was trained for."""
        return self.metadata.label.horizon_days

    @cached_property
    def coach_column(self) -> int | None:
        """The column of the coach flag in the model's matrix (None if the model has no such feature)."""
        names = self.feature_names
        return names.index(COACH_FEATURE) if COACH_FEATURE in names else None

    @cached_property
    def levels(self) -> np.ndarray:
        """The engagement level of each model column."""
        return np.array([spec.level for spec in self.specs])

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions (calibrated log-odds) and base per row; big batches use more threads."""
        if self.batch_scorer is not None and len(X) >= BATCH_ROWS:
            return self.batch_scorer.contributions(X)
        return self.scorer.contributions(X)

    def tier_of(self, risk: np.ndarray) -> np.ndarray:
        """Tier name of each risk."""
        return tier_names(risk, self.tiers)


def batch_threads(workers: int) -> int:
    """Threads for one batch prediction: the machine's cores shared among the server's workers."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


def cut_points(scorer: RiskScorer, source: str) -> tuple[tuple[tuple[str, float], ...], float]:
    """Tiers and the support trigger: from the model's metadata ("model"), or from a JSON file."""
    if source == "model":
        return scorer.tiers, scorer.operating_threshold
    raw = json.loads(Path(source).read_text())
    tiers = tuple((str(t["name"]), float(t["min_risk"])) for t in raw["tiers"])
    return tiers, float(raw.get("trigger_risk", scorer.operating_threshold))


def check_model(scorer: RiskScorer, tiers: tuple[tuple[str, float], ...], trigger_risk: float) -> None:
    """Refuse a model whose features, tiers or predictions are unusable."""
    unknown = [name for name in scorer.feature_names if name not in _CATALOG]
    if not scorer.feature_names:
        raise ModelRefused("the model lists no features")
    if unknown:
        raise ModelRefused(f"model features without a catalog entry: {', '.join(unknown[:10])}")
    if not tiers:
        raise ModelRefused("the model defines no risk tiers")
    cuts = [cut for _, cut in tiers]
    if cuts != sorted(cuts, reverse=True) or not all(0.0 <= c <= 1.0 for c in cuts):
        raise ModelRefused("tier cut-points must be between 0 and 1, highest tier first")
    if not (0.0 <= trigger_risk <= 1.0):
        raise ModelRefused("the support trigger must be a risk between 0 and 1")
    probe = np.zeros((4, len(scorer.feature_names)))
    probe[1] = np.nan
    probe[2] = 1.0
    probe[3] = 30.0
    risk = scorer.predict_risk(probe)
    contributions, base = scorer.contributions(probe)
    if risk.shape != (4,) or not np.all(np.isfinite(risk)) or risk.min() < 0 or risk.max() > 1:
        raise ModelRefused("the model's predictions are not probabilities")
    if contributions.shape != probe.shape or not np.all(np.isfinite(contributions)):
        raise ModelRefused("the model's contributions are not finite")
    if not np.allclose(expit(contributions.sum(axis=1) + base), risk, atol=1e-3):
        raise ModelRefused("the model's contributions do not add up to its risk")


def warm_up(scorer: RiskScorer, predictions: int) -> None:
    """Run a few single-row and batch predictions so the first request pays no start-up cost."""
    row = np.zeros((1, len(scorer.feature_names)))
    for _ in range(max(predictions, 1)):
        scorer.predict_risk(row)
        scorer.contributions(row)
    scorer.contributions(np.zeros((BATCH_ROWS, len(scorer.feature_names))))


def use_store(tracking_uri: str) -> None:
    """Make `tracking_uri` the process's tracking and registry store.

    MLflow resolves models:/name/version through the process-wide registry URI, whatever URI
    the download is given, so the store is made the process's registry before loading.
    """
    if mlflow.get_registry_uri() != tracking_uri:
        mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_tracking_uri() != tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)


def alias_version(tracking_uri: str, model_name: str, alias: str) -> str:
    """The version of `model_name` the registry alias points at."""
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    return str(client.get_model_version_by_alias(model_name, alias).version)


def load_version(tracking_uri: str, model_name: str, version: str, alias: str, tiers_source: str = "model",
                 warmup_predictions: int = 1, threads: int = 1) -> LoadedModel:
    """Load, check and warm up one registered version (raises ModelRefused if unusable).

    `threads` above 1 adds a copy of the booster for batches of BATCH_ROWS rows or more.
    """
    try:
        use_store(tracking_uri)
        scorer = load_scorer(f"models:/{model_name}/{version}", tracking_uri=tracking_uri)
    except MetadataError as error:
        raise ModelRefused(f"version {version} cannot be used: {error}") from error
    except Exception as error:  # noqa: BLE001 - any failure to load means the version is refused
        raise ModelRefused(f"version {version} could not be loaded ({type(error).__name__})") from error
    return checked_model(scorer, model_name, version, alias, tiers_source, warmup_predictions, threads)


def load_folder(folder: str | Path, model_name: str, version: str, alias: str, tiers_source: str = "model",
                warmup_predictions: int = 1, threads: int = 1) -> LoadedModel:
    """`load_version` for a model folder on disk (the scorer files, e.g. a Bento's model), no registry needed."""
    try:
        scorer = load_scorer(Path(folder))
    except MetadataError as error:
        raise ModelRefused(f"version {version} cannot be used: {error}") from error
    except Exception as error:  # noqa: BLE001 - any failure to load means the version is refused
        raise ModelRefused(f"version {version} could not be loaded ({type(error).__name__})") from error
    return checked_model(scorer, model_name, version, alias, tiers_source, warmup_predictions, threads)


def checked_model(scorer: RiskScorer, model_name: str, version: str, alias: str, tiers_source: str = "model",
                  warmup_predictions: int = 1, threads: int = 1) -> LoadedModel:
    """A loaded scorer checked, warmed up and wrapped as a LoadedModel (raises ModelRefused if unusable)."""
    try:
        tiers, trigger = cut_points(scorer, tiers_source)
    except Exception as error:  # noqa: BLE001 - unreadable tiers: the version cannot be used as configured
        raise ModelRefused(f"version {version} could not be loaded ({type(error).__name__})") from error
    try:
        check_model(scorer, tiers, trigger)
        warm_up(scorer, warmup_predictions)
    except ModelRefused:
        raise
    except Exception as error:  # noqa: BLE001
        raise ModelRefused(f"version {version} fails to score ({type(error).__name__})") from error
    batch = None
    if threads > 1:
        batch = scorer.with_threads(threads)
        batch.contributions(np.zeros((BATCH_ROWS, len(scorer.feature_names))))
    return LoadedModel(
        name=model_name,
        version=version,
        alias=alias,
        scorer=scorer,
        tiers=tiers,
        trigger_risk=trigger,
        loaded_at=datetime.now(timezone.utc),
        specs=tuple(_CATALOG[name] for name in scorer.feature_names),
        batch_scorer=batch,
    )
