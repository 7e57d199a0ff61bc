"""Issue 12, item 5: SIGTERM drains in-flight requests (bounded), then stops every process the server started
(the clinician page's own process too); `lapse demo`'s server stops on SIGTERM and SIGINT. Real processes on
free loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import httpx
import psutil
import pytest

from serving.launcher import free_port, stop_service, wait_ready
from serving.settings import Hardening, hardening_env


def _port_free(port: int) -> bool:
    """Whether nobody listens on `port` any more and a new server could bind it."""
    with socket.socket() as s:
        if s.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers do: TIME_WAIT does not count
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _family(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _gone(processes: list[psutil.Process], seconds: float) -> list[psutil.Process]:
    """The processes still running after waiting up to `seconds` for them to end."""
    _, alive = psutil.wait_procs(processes, timeout=seconds)
    return alive


def test_sigterm_to_lapse_serve_finishes_the_request_in_flight_then_stops_everything(kit, tmp_path):
    port = free_port()
    decisions = tmp_path / "decisions.db"
    env = {**os.environ, "MLFLOW_TRACKING_URI": kit.trained.uri, "LAPSE_API_KEYS": kit.key,
           "BENTOML_DO_NOT_TRACK": "True", **hardening_env(Hardening(decision_log_busy_ms=6000, drain_timeout_s=15))}
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "cli", "serve", "--host", "127.0.0.1", "--port", str(port),
                                "--decision-log", f"sqlite:///{decisions}"], env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process, timeout=180)
        with httpx.Client(base_url=url, timeout=60) as page:  # the clinician page's process runs from here on
            assert page.post("/ui/login", data={"key": kit.key}, headers={"origin": url}).status_code == 303
            assert page.get("/ui/api/overview").status_code == 200
        family = _family(process.pid)
        assert len(family) >= 3  # the server, at least one worker and the worker's page process
        assert any("serving.page_jobs" in " ".join(p.cmdline()) for p in family)
        holder = sqlite3.connect(decisions, isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")  # the commit of the request below waits on this lock
        answer: dict[str, object] = {}

        def call() -> None:
            try:
                answer["reply"] = httpx.post(f"{url}/score", json={"patients": [kit.item("pat-in-flight")]},
                                             headers=kit.auth, timeout=30)
            except httpx.HTTPError as error:
                answer["reply"] = error

        caller = threading.Thread(target=call)
        caller.start()
        time.sleep(1.0)
        os.kill(process.pid, signal.SIGTERM)
        time.sleep(1.0)
        holder.rollback()
        holder.close()
        caller.join(timeout=30)
        reply = answer.get("reply")
        assert isinstance(reply, httpx.Response) and reply.status_code == 200, reply
        assert process.wait(timeout=30) is not None
        assert not _gone(family, 10), "processes left after SIGTERM"
        assert _port_free(port)
    finally:
        stop_service(process, kill=True)
        log.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_lapse_demo_stops_its_server_on_a_signal(kit, sim_data_dir, tmp_path, sig):
    port = free_port()
    env = {**os.environ, "MLFLOW_TRACKING_URI": kit.trained.uri, "LAPSE_API_KEYS": kit.key,
           "BENTOML_DO_NOT_TRACK": "True", **hardening_env(Hardening(drain_timeout_s=5))}
    code = ("import sys; from pathlib import Path; from serving.demo import serve_demo; "
            "sys.exit(serve_demo(Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])))")
    out = (tmp_path / "demo.out").open("wb")
    demo = subprocess.Popen([sys.executable, "-c", code, str(sim_data_dir), str(tmp_path / "work"), str(port)],
                            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while "Serving until" not in (tmp_path / "demo.out").read_text(errors="replace"):
            assert demo.poll() is None and time.monotonic() < deadline, (tmp_path / "demo.out").read_text()[-2000:]
            time.sleep(0.5)
        family = _family(demo.pid)
        assert len(family) >= 3  # the demo, the server and its worker
        os.kill(demo.pid, sig)
        assert demo.wait(timeout=60) == 0
        assert not _gone(family, 10), "the demo left processes behind"
        assert _port_free(port)
    finally:
        for process in _family(demo.pid):
            process.kill()
        out.close()
