"""The model being served: loaded from the MLflow registry by alias, checked, and swapped atomically.

Requests take `store.current` once and use that object to the end, so a swap never mixes two
versions in one answer. A new version is loaded and checked beside the old one; only if it
passes does one assignment make it current. A version that fails to load or to score is
refused and the old one keeps serving.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
from dataclasses import dataclass, field, replace
from functools import cached_property
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from config import FeatureConfig, ProgramConfig, ServingConfig
from features.catalog import FEATURES, FeatureSpec
from models.scorer import RiskScorer, load_scorer, tier_names

log = logging.getLogger("lapse.serving.model")
_CATALOG = {spec.name: spec for spec in FEATURES}


# From this many rows on, contributions are computed with the multi-threaded copy of the booster.
BATCH_ROWS = 64


def batch_threads(workers: int) -> int:
    """Threads for one batch prediction: the machine's cores shared among the server's workers."""
    return max(1, (os.cpu_count() or 1) // max(workers, 1))


class ModelRefused(Exception):
    """A model version cannot be served; the message says why (never patient data)."""


@dataclass(frozen=True)
class ServedModel:
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
    # The feature settings the model was trained with (the program's recommended pace).
    feature_config: FeatureConfig = field(default_factory=FeatureConfig)
    # A copy of the scorer for large batches, allowed more than one thread.
    batch_scorer: RiskScorer | None = field(default=None, repr=False)

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Model features in the model's column order."""
        return self.scorer.feature_names

    @property
    def meta(self) -> dict:
        """The model's metadata artifact (model_meta.json)."""
        return self.scorer.meta

    @cached_property
    def horizon_days(self) -> int | None:
        """The prediction horizon the model was trained for, if its metadata says."""
        meta = self.meta
        for source in (meta, meta.get("label") or {}, meta.get("label_config") or {}):
            if isinstance(source, dict) and source.get("horizon_days") is not None:
                return int(source["horizon_days"])
        return None

    def contributions(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-feature contributions (calibrated log-odds) and base per row; big batches use more threads."""
        if self.batch_scorer is not None and len(X) >= BATCH_ROWS:
            return self.batch_scorer.contributions(X)
        return self.scorer.contributions(X)

    def tier_of(self, risk: np.ndarray) -> np.ndarray:
        """Tier name of each risk."""
        return tier_names(risk, self.tiers)


def cut_points(scorer: RiskScorer, source: str) -> tuple[tuple[tuple[str, float], ...], float]:
    """Tiers and the support trigger: from the model's metadata, or from a JSON file."""
    if source == "model":
        return scorer.tiers, scorer.operating_threshold
    raw = json.loads(Path(source).read_text())
    tiers = tuple((str(t["name"]), float(t["min_risk"])) for t in raw["tiers"])
    return tiers, float(raw.get("trigger_risk", scorer.operating_threshold))


def feature_config_of(meta: dict) -> FeatureConfig:
    """The feature settings recorded in a model's metadata (defaults where it records none)."""
    config = FeatureConfig()
    if isinstance(meta.get("program"), dict):
        config = replace(config, program=ProgramConfig(**meta["program"]))
    if meta.get("as_of_days"):
        config = replace(config, as_of_days=tuple(int(d) for d in meta["as_of_days"]))
    return config


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
    recomposed = 1.0 / (1.0 + np.exp(-(contributions.sum(axis=1) + base)))
    if not np.allclose(recomposed, risk, atol=1e-3):
        raise ModelRefused("the model's contributions do not add up to its risk")


def warm_up(scorer: RiskScorer, predictions: int) -> None:
    """Run a few single-row and batch predictions so the first request pays no start-up cost."""
    row = np.zeros((1, len(scorer.feature_names)))
    for _ in range(max(predictions, 1)):
        scorer.predict_risk(row)
        scorer.contributions(row)
    scorer.contributions(np.zeros((64, len(scorer.feature_names))))


def _use_store(tracking_uri: str) -> None:
    # MLflow resolves models:/name/version through the process-wide registry URI, whatever URI
    # the download is given, so the store is made the process's registry before loading.
    import mlflow

    if mlflow.get_registry_uri() != tracking_uri:
        mlflow.set_registry_uri(tracking_uri)
    if mlflow.get_tracking_uri() != tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: "swapped", "unchanged" or "refused", and why."""

    outcome: str
    detail: str


class ModelStore:
    """Holds the served model; reloads it when the registry alias moves."""

    def __init__(self, config: ServingConfig, tracking_uri: str) -> None:
        self.config = config
        self.tracking_uri = tracking_uri
        self._current: ServedModel | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def current(self) -> ServedModel | None:
        """The model to answer with (take it once per request)."""
        return self._current

    def _alias_version(self) -> str:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri, registry_uri=self.tracking_uri)
        return str(client.get_model_version_by_alias(self.config.model_name, self.config.alias).version)

    def load_version(self, version: str) -> ServedModel:
        """Load, check and warm up one registered version (raises ModelRefused if unusable)."""
        uri = f"models:/{self.config.model_name}/{version}"
        try:
            _use_store(self.tracking_uri)
            scorer = load_scorer(uri, tracking_uri=self.tracking_uri)
            tiers, trigger = cut_points(scorer, self.config.tiers_source)
            feature_config = feature_config_of(scorer.meta)
        except ModelRefused:
            raise
        except Exception as error:  # noqa: BLE001 - any failure to load means the version is refused
            raise ModelRefused(f"version {version} could not be loaded ({type(error).__name__})") from error
        try:
            check_model(scorer, tiers, trigger)
            warm_up(scorer, self.config.warmup_predictions)
        except ModelRefused:
            raise
        except Exception as error:  # noqa: BLE001
            raise ModelRefused(f"version {version} fails to score ({type(error).__name__})") from error
        threads = batch_threads(self.config.workers)
        batch = None
        if threads > 1:
            batch = RiskScorer(scorer.booster.copy(), scorer.meta)
            batch.booster.set_param({"nthread": threads})
            batch.contributions(np.zeros((BATCH_ROWS, len(scorer.feature_names))))
        return ServedModel(
            name=self.config.model_name,
            version=version,
            alias=self.config.alias,
            scorer=scorer,
            tiers=tiers,
            trigger_risk=trigger,
            loaded_at=datetime.now(timezone.utc),
            specs=tuple(_CATALOG[name] for name in scorer.feature_names),
            feature_config=feature_config,
            batch_scorer=batch,
        )

    def reload(self) -> ReloadOutcome:
        """Serve the version the alias points at now, if it differs and passes the checks."""
        with self._reload_lock:
            current = self._current
            try:
                version = self._alias_version()
            except Exception as error:  # noqa: BLE001
                detail = f"alias {self.config.alias!r} of {self.config.model_name!r} not found ({type(error).__name__})"
                log.warning("reload refused: %s", detail)
                return ReloadOutcome("refused", detail)
            if current is not None and current.version == version:
                return ReloadOutcome("unchanged", f"version {version} is already served")
            try:
                loaded = self.load_version(version)
            except ModelRefused as refusal:
                log.warning("reload refused: %s", refusal)
                return ReloadOutcome("refused", f"{refusal}; still serving "
                                     f"{'version ' + current.version if current else 'no model'}")
            self._current = loaded
            log.info("now serving %s version %s (alias %s)", loaded.name, version, loaded.alias)
            previous = f" instead of version {current.version}" if current else ""
            return ReloadOutcome("swapped", f"serving version {version}{previous}")

    def start_polling(self, seconds: float) -> None:
        """Check the alias every `seconds` in a background thread (0 or less: never)."""
        if seconds <= 0 or not math.isfinite(seconds) or self._poller is not None:
            return

        def poll() -> None:
            while not self._stop.wait(seconds):
                try:
                    self.reload()
                except Exception as error:  # noqa: BLE001 - the poller must survive anything
                    log.warning("model poll failed (%s)", type(error).__name__)

        self._poller = threading.Thread(target=poll, name="model-poller", daemon=True)
        self._poller.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()
