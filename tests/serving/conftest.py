"""Serving fixtures shared by the hardening tests: one trained, promoted model, and real servers on it."""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from config import ServingConfig
from serving.launcher import base_url, free_port, start_service, stop_service, wait_ready
from serving.settings import Hardening, hardening_env

HARD_KEY = "client-key-hard-5e1b"
HARD_ADMIN = "admin-key-hard-77c0"
HARD_MODEL = "lapse-dropout"


@dataclass
class Trained:
    uri: str
    version: str
    feature_names: list[str]
    root: Path


@dataclass
class Running:
    url: str
    process: subprocess.Popen
    log_path: Path
    decisions_url: str
    decisions_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self, **kwargs) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {HARD_KEY}"}, timeout=60, **kwargs)


@pytest.fixture(scope="session")
def trained(tmp_path_factory, champion, private_store) -> Trained:
    """The session's champion in a tracking store of these tests' own."""
    root = tmp_path_factory.mktemp("hardening")
    return Trained(private_store(root), champion.version, champion.feature_names, root)


def launch(trained: Trained, name: str, config: ServingConfig | None = None,
           settings: Hardening | None = None, decisions_path: Path | None = None, ready: bool = True,
           extra_env: dict[str, str] | None = None) -> Running:
    """A real BentoML server for `trained` on a free loopback port, its output in `<root>/<name>.log`."""
    decisions_path = decisions_path or trained.root / f"{name}-decisions.db"
    decisions_url = f"sqlite:///{decisions_path}"
    config = (config or ServingConfig()).model_copy(update={
        "host": "127.0.0.1", "port": free_port(), "decision_log_url": decisions_url, "warmup_predictions": 4})
    env = {**os.environ, "MLFLOW_TRACKING_URI": trained.uri, "LAPSE_API_KEYS": HARD_KEY,
           "LAPSE_ADMIN_KEY": HARD_ADMIN, "BENTOML_DO_NOT_TRACK": "True",
           **hardening_env(settings or Hardening()), **(extra_env or {})}
    env.pop("LAPSE_API_KEYS_FILE", None)
    log_path = trained.root / f"{name}.log"
    out = log_path.open("ab")
    process = start_service(config, env=env, output=out)
    out.close()
    running = Running(base_url(config), process, log_path, decisions_url, decisions_path)
    if ready:
        try:
            wait_ready(running.url, process, timeout=180)
        except Exception:
            stop_service(process, kill=True)
            raise RuntimeError(f"server did not start:\n{running.logs()[-3000:]}")
    return running


def feature_item(trained: Trained, patient_id: str = "pat-1", **values: float | None) -> dict:
    """A /score item that sends features: plausible defaults (a patient who has started: one active day, and
    is in the model's population, so scored), overridden by `values`."""
    features = {name: 0.0 for name in trained.feature_names}
    if "age" in features:
        features["age"] = 35.0
    if "active_days_total" in features:
        features["active_days_total"] = 1.0
    features.update(values)
    return {"patient_id": patient_id, "features": features}


class Kit:
    """What the hardening tests need: the trained model, its keys, servers on it, and request items."""

    key = HARD_KEY
    admin = HARD_ADMIN

    def __init__(self, trained: Trained) -> None:
        self.trained = trained

    def launch(self, name: str, config: ServingConfig | None = None, settings: Hardening | None = None,
               **kwargs) -> Running:
        return launch(self.trained, name, config, settings, **kwargs)

    def item(self, patient_id: str = "pat-1", **values: float | None) -> dict:
        return feature_item(self.trained, patient_id, **values)

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {HARD_KEY}"}


@pytest.fixture(scope="session")
def kit(trained) -> Kit:
    return Kit(trained)


@pytest.fixture(scope="session")
def shared_server(kit):
    """One server with the default settings, shared by the modules that only send it requests (each server
    costs seconds to start and stop). A test using it must not need a fresh server: it picks patient ids of its
    own and reads back only its own rows. Tests that change a server's state, or check its start or its stop,
    launch their own."""
    running = kit.launch("shared")
    yield running
    stop_service(running.process)
