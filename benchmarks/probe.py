"""Issue 12's attacks against a live lapse server, one result a line, bounded in time.

It simulates a small cohort, trains a short model into a temporary MLflow store, starts the
service on a free loopback port (one worker) and then: stalls the decision log past the request
timeout, floods random paths and scrapes /metrics, holds idle half-sent connections, sends
impossible values, forges log lines, guesses keys, checks headers, measures /score at
concurrency 1 with and without the clinician overview loading, and finally sends SIGTERM with a
request in flight.

Item 10 times /score alone and while a second process, standing for clinicians' browsers, loads the
overview `--overview-rate` times a second (20 by default: far more than a team of coaches does), in
alternating rounds, so that whatever else the shared machine runs weighs on both sides alike. A
flat-out loop (`--overview-rate 0`) mostly measures the machine: on 2 cores the loop itself takes a
core from the server and the timing client, whatever it reads; so it is printed with its control, the
same loop reading the same bytes from a static file server that is not lapse.

    .venv/bin/python -P benchmarks/probe.py [--idle 2000] [--paths 2000]

(`-P`: the benchmarks folder holds scripts named like lapse's packages, which must not shadow them.)

The issue's full attack holds 20,000 idle connections (`--idle 20000`; needs `ulimit -n` above
that); the default holds 2,000 so the run stays within a minute or two on a shared machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from pathlib import Path

import httpx
import psutil

from config import ServingConfig, TrainingConfig, XGBoostParams
from serving.launcher import base_url, free_port, start_service, stop_service, wait_ready
from serving.settings import Hardening, hardening_env
from simulation.settings import SimulationConfig

KEY, ADMIN = "probe-key", "probe-admin"


def build(work: Path) -> tuple[str, Path, list[dict]]:
    """(tracking URI, data folder, feature items of the cohort) with a short model promoted to champion."""
    from features.point_in_time import compute_features
    from features.snapshots import snapshot_times
    from models.scorer import load_scorer
    from simulation import simulate
    from simulation.output import write_cohort
    from training.job import run_training
    from training.promotion import promote

    settings = replace(SimulationConfig(), n_patients=1500, days=60, seed=12)
    cohort = simulate(settings)
    data = write_cohort(cohort, settings, work / "cohort")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    training = TrainingConfig(xgboost=XGBoostParams(max_rounds=40, early_stopping_rounds=10), shap_plot_rows=100,
                              subgroups=("sex",), subgroup_min_size=20, subgroup_min_positives=5)
    summary = run_training(data, training, tracking=uri)
    promote(training, tracking=uri, override_reason="probe: a small cohort")
    names = list(load_scorer(summary.model_uri, tracking_uri=uri).feature_names)
    frame = compute_features(cohort.patients, cohort.events, snapshot_times(cohort.patients, [14]))
    items = [{"patient_id": f"p{i}", "features": {n: (None if v != v else float(v)) for n, v in zip(names, row)}}
             for i, row in enumerate(frame[names].itertuples(index=False))]
    return uri, data, items


def say(item: str, text: str) -> None:
    print(f"[{item}] {text}", flush=True)


def stall(url: str, db: Path, items: list[dict], auth: dict) -> None:
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    reply = httpx.post(f"{url}/score", json={"patients": items[:1]}, headers=auth, timeout=60)
    say("1", f"commit stalled by a lock: /score -> {reply.status_code} after {time.monotonic() - started:.1f} s")
    deadline = time.monotonic() + 15
    while httpx.get(f"{url}/readyz").status_code == 200 and time.monotonic() < deadline:
        time.sleep(0.2)
    ready = httpx.get(f"{url}/readyz")
    say("1", f"while locked: /readyz -> {ready.status_code} {ready.text.strip()[:90]}")
    holder.rollback()
    holder.close()
    released = time.monotonic()
    while httpx.get(f"{url}/readyz").status_code != 200 and time.monotonic() < released + 30:
        time.sleep(0.2)
    codes = [httpx.post(f"{url}/score", json={"patients": items[i:i + 1]}, headers=auth).status_code
             for i in range(1, 6)]
    say("1", f"lock released: ready again after {time.monotonic() - released:.1f} s; next 5 /score -> {codes}")


def metrics(url: str, paths: int) -> None:
    started = time.monotonic()
    with httpx.Client() as client:
        for i in range(paths):
            client.get(f"{url}/probe-{i}-{os.urandom(4).hex()}")
    flood = time.monotonic() - started
    open_status = httpx.get(f"{url}/metrics").status_code
    started = time.monotonic()
    scrape = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"})
    say("2", f"{paths:,} random paths in {flood:.1f} s; /metrics without key -> {open_status}; "
             f"with admin key -> {scrape.status_code}, {len(scrape.content):,} bytes in "
             f"{time.monotonic() - started:.3f} s, random paths in it: {'probe-' in scrape.text}")


def idle(url: str, count: int, items: list[dict], auth: dict, header_timeout: float) -> None:
    host, port = url.removeprefix("http://").split(":")
    held, refused = [], 0
    started = time.monotonic()
    for _ in range(count):
        try:
            s = socket.create_connection((host, int(port)), timeout=5)
            s.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\n")
            held.append(s)
        except OSError:
            refused += 1
    say("3", f"{len(held):,} half-sent connections opened in {time.monotonic() - started:.1f} s "
             f"({refused} refused by the OS)")
    codes = [httpx.post(f"{url}/score", json={"patients": items[i:i + 1]}, headers=auth, timeout=30).status_code
             for i in range(5)]
    say("3", f"while they are held: 5 valid /score -> {codes}")
    time.sleep(header_timeout + 1)
    closed = 0
    for s in held:
        s.settimeout(0.05)
        try:
            closed += s.recv(1 << 12) == b""
        except (TimeoutError, socket.timeout):
            pass
        except OSError:
            closed += 1
        s.close()
    say("3", f"after the header timeout ({header_timeout:.0f} s): {closed:,} of {len(held):,} closed by the server")


def values(url: str, items: list[dict], auth: dict) -> None:
    for name, value in (("sessions_7d", 1e308), ("minutes_total", -1e300), ("age", -3.0), ("sessions_7d", -1e6)):
        item = {**items[0], "features": {**items[0]["features"], name: value}}
        reply = httpx.post(f"{url}/score", json={"patients": [item]}, headers=auth)
        problem = reply.json().get("problems", [{}])[0].get("field", "") if reply.status_code == 422 else ""
        say("4/9", f"{name}={value:g} -> {reply.status_code} {problem}")
    batch = [dict(item) for item in items[:1000]]
    batch[500] = {**batch[500], "features": {**batch[500]["features"], "sessions_7d": 1e308}}
    reply = httpx.post(f"{url}/score", json={"patients": batch}, headers=auth, timeout=120)
    body = reply.json()
    say("4", f"1,000-patient batch with one 1e308 -> {reply.status_code}, {len(body.get('results', []))} scored, "
             f"errors at {[e['index'] for e in body.get('errors', [])]}")
    year_one = httpx.post(f"{url}/score", json={"patients": [{**items[0], "as_of": "0001-01-01T00:00:00+00:00"}]},
                          headers=auth)
    twice = httpx.post(f"{url}/score", json={"patients": [items[0], items[0]]}, headers=auth)
    long_name = httpx.post(f"{url}/score", json={"patients": [{**items[0], "n" * 10_000: 1}]}, headers=auth)
    say("9", f"as_of year 1 -> {year_one.status_code}; duplicate ids -> {twice.status_code}; 10,000-char name -> "
             f"{long_name.status_code}, reply {len(long_name.content)} bytes")


def forged_log(url: str, log_path: Path) -> None:
    httpx.get(f"{url}/x%0aFORGED-LINE%20admin%20signed%20in%00")
    time.sleep(0.5)
    text = log_path.read_text(errors="replace")
    forged = any(line.startswith("FORGED-LINE") for line in text.splitlines())
    say("6", f"path with %0a and %00: forged line in the log: {forged}; NUL in the log: {chr(0) in text}")


def keys_and_origin(url: str, auth: dict, window_s: float) -> None:
    codes = [httpx.get(f"{url}/model", headers={"Authorization": f"Bearer wrong-{i}"}).status_code for i in range(12)]
    say("7", f"12 wrong keys -> {codes[:3]}...{codes[-3:]}, Retry-After "
             f"{httpx.get(f'{url}/model', headers=auth).headers.get('retry-after')}")
    no_origin = httpx.post(f"{url}/ui/login", data={"key": KEY}).status_code
    port = url.rsplit(":", 1)[1]
    forged = httpx.post(f"{url}/ui/login", data={"key": KEY},
                        headers={"origin": f"http://evil.example:{port}", "host": f"evil.example:{port}"}).status_code
    say("7", f"sign-in without Origin -> {no_origin}; with forged Host and Origin -> {forged}")
    time.sleep(window_s + 0.5)  # let the limit on this client lapse before the next probe


def headers(url: str, auth: dict) -> None:
    for path in ("/", "/docs.json", "/metrics", "/model", "/ui/login"):
        reply = httpx.get(url + path, headers=auth if path == "/model" else {})
        h = reply.headers
        say("8", f"{path}: {reply.status_code} csp={'frame-ancestors' in h.get('content-security-policy', '')} "
                 f"nosniff={h.get('x-content-type-options') == 'nosniff'} no-store={h.get('cache-control') == 'no-store'}"
                 f" third-party script={'googletagmanager' in reply.text or 'cdn.' in reply.text}")


def _times(url: str, items: list[dict], auth: dict, n: int, first: int) -> list[float]:
    """Seconds of `n` single-patient /score calls, one after the other (concurrency 1)."""
    times = []
    with httpx.Client(base_url=url, headers=auth) as client:
        for i in range(first, first + n):
            started = time.perf_counter()
            client.post("/score", json={"patients": [items[i % len(items)]]})
            times.append(time.perf_counter() - started)
    return times


def overview(url: str, items: list[dict], auth: dict, n: int, rate: float, rounds: int) -> None:
    """/score p50 alone and while a clinician's page loads the overview `rate` times a second (0: as fast as
    it can), in alternating rounds so that the other load on a shared machine weighs on both alike."""
    with httpx.Client(base_url=url, headers=auth, timeout=120) as client:
        for start in range(0, len(items), 1000):
            client.post("/score", json={"patients": items[start:start + 1000]})
    alone, busy, loads = _alternating(url, items, auth, n, rounds, (url, "/ui/api/overview", rate, True))
    pace = f"{rate:g} times a second" if rate else "in a loop, as fast as one client can"
    say("10", f"/score p50 at concurrency 1: {alone:.2f} ms alone, {busy:.2f} ms while the overview loads {pace} "
              f"({loads} loads; {rounds} alternating rounds of {n // rounds} requests each): ratio {busy / alone:.2f}")
    if not rate:
        # The peer of a flat-out loop: the same loop reading the same bytes from a server that is not lapse.
        with tempfile.TemporaryDirectory(prefix="lapse-probe-static-") as folder, httpx.Client(base_url=url) as page:
            page.post("/ui/login", data={"key": KEY}, headers={"origin": url})
            Path(folder, "overview.json").write_bytes(page.get("/ui/api/overview", timeout=120).content)
            port = free_port()
            static = subprocess.Popen([sys.executable, "-c", _STATIC_SERVER, folder, str(port)])
            try:
                _wait_for(f"http://127.0.0.1:{port}/overview.json")
                alone, busy, loads = _alternating(url, items, auth, n, rounds,
                                                  (f"http://127.0.0.1:{port}", "/overview.json", 0, False))
            finally:
                static.kill()
                static.wait()
        say("10", f"control: {alone:.2f} ms alone, {busy:.2f} ms while the same loop reads the same bytes from a "
                  f"static file server, not lapse ({loads} loads): ratio {busy / alone:.2f}")


# A keep-alive HTTP/1.1 file server (python's http.server speaks HTTP/1.0, a new connection per load).
_STATIC_SERVER = """import functools, http.server, sys
handler = type("H", (http.server.SimpleHTTPRequestHandler,), {"protocol_version": "HTTP/1.1",
                                                              "log_message": lambda *a: None})
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[2])),
                                functools.partial(handler, directory=sys.argv[1])).serve_forever()
"""


def _wait_for(url: str, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            httpx.get(url).raise_for_status()
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _alternating(url: str, items: list[dict], auth: dict, n: int, rounds: int,
                 reader: tuple[str, str, float, bool]) -> tuple[float, float, int]:
    """(p50 ms alone, p50 ms while `reader` reads, reads made): `n` requests of each, in `rounds` rounds."""
    go, idle, stop = multiprocessing.Event(), multiprocessing.Event(), multiprocessing.Event()
    loads = multiprocessing.Value("i", 0)
    # A process of its own, like a clinician's browser: its reading does not compete with the timing client.
    loader = multiprocessing.Process(target=load_page, args=(*reader, go, idle, stop, loads))
    loader.start()
    alone: list[float] = []
    busy: list[float] = []
    per = n // rounds
    try:
        for i in range(rounds):
            go.clear()
            idle.wait(120)
            alone += _times(url, items, auth, per, 2 * i * per)
            idle.clear()
            go.set()
            time.sleep(0.5)
            busy += _times(url, items, auth, per, (2 * i + 1) * per)
    finally:
        stop.set()
        go.set()
        loader.join(30)
    return statistics.median(alone) * 1000, statistics.median(busy) * 1000, loads.value


def load_page(base: str, path: str, rate: float, sign_in: bool, go, idle, stop, loads) -> None:  # noqa: ANN001
    """Read `path` `rate` times a second (0: as fast as it can) while `go` is set, until `stop` is set; say
    `idle` while paused."""
    with httpx.Client(base_url=base, timeout=120) as page:
        if sign_in:
            page.post("/ui/login", data={"key": KEY}, headers={"origin": base})
        due = time.monotonic()
        while not stop.is_set():
            if not go.is_set():
                idle.set()
                go.wait(0.1)
                due = time.monotonic()
                continue
            if rate:
                due = max(due + 1 / rate, time.monotonic())
                time.sleep(max(0.0, due - time.monotonic()))
            page.get(path)
            with loads.get_lock():
                loads.value += 1


def drain(url: str, process, db: Path, items: list[dict], auth: dict) -> None:
    family = [psutil.Process(process.pid), *psutil.Process(process.pid).children(recursive=True)]
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    result: list[object] = []
    caller = threading.Thread(target=lambda: result.append(
        httpx.post(f"{url}/score", json={"patients": items[:1]}, headers=auth, timeout=30).status_code))
    caller.start()
    time.sleep(1)
    os.kill(process.pid, signal.SIGTERM)
    time.sleep(1)
    holder.rollback()
    holder.close()
    caller.join(30)
    process.wait(timeout=60)
    _, alive = psutil.wait_procs(family, timeout=10)
    with socket.socket() as s:
        listening = s.connect_ex(("127.0.0.1", int(url.rsplit(":", 1)[1]))) == 0
    say("5", f"SIGTERM with a request in flight: it got {result}; processes left {len(alive)}; port still open "
             f"{listening}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=2000, help="idle connections to hold (the issue: 20000)")
    parser.add_argument("--paths", type=int, default=2000, help="random paths to request before scraping")
    parser.add_argument("--latency-requests", type=int, default=200, help="/score calls alone and as many busy")
    parser.add_argument("--latency-rounds", type=int, default=5, help="alternating rounds they are split into")
    parser.add_argument("--overview-rate", type=float, default=20.0,
                        help="overview loads a second while /score is timed (0: a flat-out loop, with its control)")
    parser.add_argument("--overview-cache", type=float, default=10.0,
                        help="seconds the overview is answered from its last build (0: every load checks the "
                             "decision log and waits for a new build if decisions were logged since)")
    args = parser.parse_args()
    settings = Hardening(decision_log_busy_ms=5000, decision_log_retry_s=0.5, header_timeout_s=5,
                         max_connections=max(args.idle + 100, 1000), failed_auth_limit=10, failed_auth_window_s=5,
                         overview_cache_s=args.overview_cache)
    with tempfile.TemporaryDirectory(prefix="lapse-probe-") as folder:
        work = Path(folder)
        uri, data, items = build(work)
        db = work / "decisions.db"
        config = ServingConfig(port=free_port(), decision_log_url=f"sqlite:///{db}",
                               request_timeout_s=3.0, data_dir=str(data))
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LAPSE_API_KEYS": KEY, "LAPSE_ADMIN_KEY": ADMIN,
               **hardening_env(settings)}
        log_path = work / "server.log"
        with log_path.open("ab") as out:
            process = start_service(config, env=env, output=out)
        url, auth = base_url(config), {"Authorization": f"Bearer {KEY}"}
        try:
            wait_ready(url, process, timeout=180)
            say("-", f"server {url}, {len(items):,} patients, one worker")
            stall(url, db, items, auth)
            metrics(url, args.paths)
            idle(url, args.idle, items, auth, settings.header_timeout_s)
            values(url, items, auth)
            forged_log(url, log_path)
            headers(url, auth)
            overview(url, items, auth, args.latency_requests, args.overview_rate, args.latency_rounds)
            keys_and_origin(url, auth, settings.failed_auth_window_s)
            drain(url, process, db, items, auth)
        finally:
            stop_service(process, kill=True)


if __name__ == "__main__":
    sys.exit(main())
