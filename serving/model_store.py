"""The model being served: loaded from the MLflow registry by alias (or from the Bento it runs in), checked,
and swapped atomically.

Requests take `store.current` once and use that object to the end, so a swap never mixes two
versions in one answer. A new version is loaded and checked beside the old one (by
`models.loaded.load_version`, as batch scoring loads it); only if it passes does one assignment
make it current. A version that fails to load or to score is refused and the old one keeps serving.
"""

from __future__ import annotations

import gc
import logging
import math
import threading
from dataclasses import dataclass

from config import ServingConfig
from models.loaded import LoadedModel, ModelRefused, alias_version, batch_threads, load_folder, load_version

from .bento import in_bento, packed_model

log = logging.getLogger("lapse.serving.model")


@dataclass(frozen=True)
class ReloadOutcome:
    """What a reload did: "swapped", "unchanged" or "refused", and why."""

    outcome: str
    detail: str


# Young objects the garbage collector lets pile up before a pass (Python's default is 700). A 1,000-patient
# request builds tens of thousands of objects that all live until its answer: with the default, the collector
# made dozens of passes per batch over objects still in use (benchmarks/serving_ab.py measures the difference).
_YOUNG_OBJECTS = 20_000


def _settle_heap() -> None:
    """The model and everything loaded so far live as long as the worker: keep them out of the garbage
    collector's generations (each collection during a big batch stays short), and collect less often."""
    gc.freeze()
    gc.set_threshold(_YOUNG_OBJECTS, *gc.get_threshold()[1:])


class ModelStore:
    """Holds the served model; reloads it when the registry alias moves."""

    def __init__(self, config: ServingConfig, tracking_uri: str) -> None:
        self.config = config
        self.tracking_uri = tracking_uri
        self._current: LoadedModel | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def current(self) -> LoadedModel | None:
        """The model to answer with (take it once per request)."""
        return self._current

    def load_version(self, version: str) -> LoadedModel:
        """Load, check and warm up one registered version (raises ModelRefused if unusable)."""
        return load_version(self.tracking_uri, self.config.model_name, version, self.config.alias,
                            self.config.tiers_source, self.config.warmup_predictions,
                            batch_threads(self.config.workers))

    @property
    def from_bento(self) -> bool:
        """Whether the model comes from the Bento's packed model rather than the registry."""
        source = self.config.model_source
        return source == "bento" or (source == "auto" and in_bento())

    def _reload_packed(self) -> ReloadOutcome:
        """Serve the model packed in the Bento (it never changes while the Bento runs)."""
        if self._current is not None:
            return ReloadOutcome("unchanged", f"version {self._current.version} is packed in the Bento")
        try:
            packed = packed_model(self.config.model_name)
            loaded = load_folder(packed.folder, self.config.model_name, packed.version, packed.alias,
                                 self.config.tiers_source, self.config.warmup_predictions,
                                 batch_threads(self.config.workers))
        except (LookupError, KeyError, ModelRefused) as error:
            detail = f"the Bento's model cannot be used ({error})"
            log.warning("reload refused: %s", detail)
            return ReloadOutcome("refused", detail)
        self._current = loaded
        _settle_heap()
        log.info("now serving %s version %s from the Bento (%s)", loaded.name, loaded.version, packed.tag)
        return ReloadOutcome("swapped", f"serving version {loaded.version} from the Bento")

    def reload(self) -> ReloadOutcome:
        """Serve the version the alias points at now, if it differs and passes the checks."""
        if self.from_bento:
            with self._reload_lock:
                return self._reload_packed()
        with self._reload_lock:
            current = self._current
            try:
                version = alias_version(self.tracking_uri, self.config.model_name, self.config.alias)
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
            _settle_heap()
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
