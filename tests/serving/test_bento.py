"""`lapse build` packs the champion into a Bento that serves the same answers with no MLflow store reachable."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serving.launcher import free_port, stop_service, wait_ready



def _uv_path() -> str:
    """PATH with uv on it (BentoML's builder runs uv); the test is skipped where uv is not installed."""
    path = os.environ.get("PATH", "")
    if shutil.which("uv", path=path) is None:
        path = os.pathsep.join([str(Path.home() / ".local" / "bin"), path])
    if shutil.which("uv", path=path) is None:
        pytest.skip("uv is not installed: BentoML cannot build a Bento without it")
    return path


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def test_a_built_bento_serves_the_registry_answers_without_mlflow(kit, shared_server, tmp_path):
    env = {**os.environ, "PATH": _uv_path(), "BENTOML_HOME": str(tmp_path / "build-home"),
           "MLFLOW_TRACKING_URI": kit.trained.uri, "BENTOML_DO_NOT_TRACK": "True"}
    built = _run([sys.executable, "-m", "cli", "build", "--version", "t1"], env, tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    assert f"version {kit.trained.version} (alias champion)" in built.stdout
    assert "built Bento lapse:t1" in built.stdout

    # The exported Bento carries its model: imported into an empty BentoML home, it is all the server has.
    archive = tmp_path / "lapse.bento"
    exported = _run([sys.executable, "-m", "bentoml", "export", "lapse:t1", str(archive)], env, tmp_path)
    assert exported.returncode == 0, exported.stderr[-3000:]
    run_env = {**env, "BENTOML_HOME": str(tmp_path / "serve-home"), "LAPSE_API_KEYS": kit.key,
               "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'gone' / 'mlflow.db'}"}
    run_env.pop("LAPSE_SERVING_CONFIG", None)
    imported = _run([sys.executable, "-m", "bentoml", "import", str(archive)], run_env, tmp_path)
    assert imported.returncode == 0, imported.stderr[-3000:]
    assert not (tmp_path / "gone").exists()

    port = free_port()
    work = tmp_path / "run"
    work.mkdir()
    log = (tmp_path / "bento.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "lapse:t1", "--port", str(port)],
                               env=run_env, cwd=work, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_ready(f"http://127.0.0.1:{port}", process, timeout=240)
        items = [kit.item("pat-1"), kit.item("pat-2", age=70.0)]
        body = {"patients": [{**item, "as_of": "2025-10-01T00:00:00Z"} for item in items]}
        headers = kit.auth
        from_bento = httpx.post(f"http://127.0.0.1:{port}/score", json=body, headers=headers, timeout=60)
        with shared_server.client() as client:  # the registry's answers: a server on the MLflow store
            from_registry = client.post("/score", json=body)
        assert from_bento.status_code == 200, from_bento.text
        assert from_registry.status_code == 200, from_registry.text
        got = [(r["patient_id"], r["risk"], r["model"]["version"]) for r in from_bento.json()["results"]]
        want = [(r["patient_id"], r["risk"], r["model"]["version"]) for r in from_registry.json()["results"]]
        assert got == want
        card = httpx.get(f"http://127.0.0.1:{port}/model", headers=headers, timeout=30)
        assert card.status_code == 200 and card.json()["version"] == kit.trained.version
        assert not (tmp_path / "gone").exists()  # the server never created an MLflow store
    finally:
        stop_service(process)
        log.close()


def test_the_bento_listens_on_loopback_only_by_default():
    from serving import service

    assert service.RiskService.config["http"]["host"] == "127.0.0.1"


def test_build_names_the_alias_it_cannot_find_and_builds_nothing(kit, tmp_path):
    env = {**os.environ, "PATH": _uv_path(), "BENTOML_HOME": str(tmp_path / "home"),
           "MLFLOW_TRACKING_URI": kit.trained.uri, "BENTOML_DO_NOT_TRACK": "True"}
    built = _run([sys.executable, "-m", "cli", "build", "--alias", "no-such-alias"], env, tmp_path)
    assert built.returncode == 2
    assert "no version of lapse-dropout behind alias 'no-such-alias'" in built.stderr
    assert not (tmp_path / "home" / "bentos").exists()
