"""Starting and stopping the BentoML server process for `lapse serve`, the tests and the benchmarks."""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO

import httpx

from config import DEFAULT_PATHS, ServingConfig

from .settings import config_env

SERVICE = "serving.service:RiskService"
# The server's own Prometheus folder (read by serving/server_main.py).
METRICS_DIR_ENV = "LAPSE_METRICS_DIR"
# Where free ports are looked for: below the range the OS takes outgoing connections' source ports from.
_LOWEST_PORT = 20_000
_EPHEMERAL = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _first_ephemeral_port() -> int:
    try:
        return int(_EPHEMERAL.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(host: str, port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody uses right now, chosen below the OS's range for outgoing connections: a port from
    that range may become some client's source port before the server binds it (then: address in use)."""
    below = range(_LOWEST_PORT, _first_ephemeral_port())
    for port in random.sample(below, min(len(below), 200)):
        if _bindable(host, port):
            return port
    with socket.socket() as s:  # no such range here: any port the OS gives
        s.bind((host, 0))
        return s.getsockname()[1]


def serve_argv(config: ServingConfig) -> list[str]:
    """The command line that runs the risk service under BentoML (through serving/server_main.py)."""
    return [sys.executable, "-m", "serving.server_main", "serve", SERVICE, "--host", config.host,
            "--port", str(config.port)]


def metrics_dir(config: ServingConfig) -> Path:
    """This server's Prometheus folder: one per port, so servers on one host keep their own counts."""
    return DEFAULT_PATHS.work / "metrics" / f"port-{config.port}"


def serve_env(config: ServingConfig, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The server's environment: `base` (default: this process's) plus the serving configuration."""
    env = dict(os.environ if base is None else base)
    env.update(config_env(config))
    env.setdefault("BENTOML_DO_NOT_TRACK", "True")
    env["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    env[METRICS_DIR_ENV] = str(metrics_dir(config))
    return env


def base_url(config: ServingConfig) -> str:
    """Where the service answers."""
    host = f"[{config.host}]" if ":" in config.host else config.host
    return f"http://{host}:{config.port}"


def page_url(base_url: str) -> str:
    """Where the clinician page of a service at `base_url` answers."""
    return f"{base_url.rstrip('/')}/ui/"


def start_service(config: ServingConfig, env: Mapping[str, str] | None = None,
                  output: IO | int | None = None) -> subprocess.Popen:
    """Start the server in a session of its own (so terminal signals reach it only through stop_service)."""
    return subprocess.Popen(serve_argv(config), env=serve_env(config, env), stdout=output,
                            stderr=subprocess.STDOUT if output is not None else None, start_new_session=True)


def wait_ready(url: str, process: subprocess.Popen | None = None, timeout: float = 120.0) -> None:
    """Block until GET /readyz answers 200; fail if the process exits or the time runs out."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise RuntimeError(f"the service exited with code {process.returncode} before it was ready")
            try:
                if client.get(f"{url}/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
    raise TimeoutError(f"the service at {url} was not ready after {timeout:.0f} s")


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        return [child.pid for child in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


def stop_service(process: subprocess.Popen, timeout: float = 20.0, kill: bool = False) -> None:
    """Stop the server and its workers: SIGTERM, then SIGKILL after `timeout` (at once if `kill`).

    BentoML's workers run in process groups of their own, so they are found and signalled by id.
    """
    if process.poll() is not None:
        return
    workers = _descendants(process.pid)
    if kill:
        _signal_all([process.pid, *workers], signal.SIGKILL)
        process.wait(timeout=timeout)
        return
    _signal_all([process.pid], signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _signal_all([process.pid], signal.SIGKILL)
        process.wait(timeout=timeout)
    _signal_all([pid for pid in workers if _alive(pid)], signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
