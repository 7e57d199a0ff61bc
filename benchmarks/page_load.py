"""Clinician page load times for ~5,000 scored patients, in a real browser (Debian's Chromium via Playwright).

A cohort is simulated, a small model is trained into a temporary MLflow store and served by `lapse serve`
with the cohort as its data folder; every patient is scored through /score at the data's end (as the demo
does). The server is then restarted and the page is opened: the first load after the restart ("cold")
and then `--repeat` loads ("warm") are timed from navigation until Today's queue is drawn, and until the
full list's first page is drawn. The peer, measured in the same run, is the JSON the list is drawn from
(GET /ui/api/overview, fetched from inside the page): the ratio says what the drawing adds.

    python -P benchmarks/page_load.py [--patients 5000] [--repeat 5] [--settle 30]

A last restart is opened `--settle` seconds after the service is ready: the page starts reading the data
folder at start-up, so a coach arriving a little after a restart does not wait for it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from config import ServingConfig, TrainingConfig, XGBoostParams
from features.io import write_table
from serving.demo import batches, request_items
from serving.launcher import free_port, start_service, stop_service, wait_ready
from simulation import simulate
from simulation.settings import SimulationConfig
from training.job import run_training

CHROMIUM = "/usr/bin/chromium"
KEY = "bench-page-key"
MODEL = "lapse-dropout"


def _prepare(root: Path, n: int) -> tuple[Path, str, ServingConfig, dict]:
    from mlflow import MlflowClient

    sim = simulate(SimulationConfig(n_patients=n, days=70))
    data = root / "data"
    for name, frame in (("patients", sim.patients), ("events", sim.events), ("truth", sim.truth)):
        write_table(frame, data, name)
    (data / "meta.json").write_text(json.dumps({"data_end": sim.data_end.isoformat()}))
    uri = f"sqlite:///{root / 'mlflow.db'}"
    training = TrainingConfig(xgboost=XGBoostParams(max_rounds=60, early_stopping_rounds=10), shap_plot_rows=200)
    summary = run_training(data, training, tracking=uri)
    MlflowClient(uri, registry_uri=uri).set_registered_model_alias(MODEL, "champion", summary.model_version)
    config = ServingConfig(port=free_port(), decision_log_url=f"sqlite:///{root / 'decisions.db'}",
                           data_dir=str(data), warmup_predictions=4)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LAPSE_API_KEYS": KEY, "BENTOML_DO_NOT_TRACK": "True",
           "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false"}
    env.pop("LAPSE_API_KEYS_FILE", None)
    return data, uri, config, {"sim": sim, "env": env}


def _score_everyone(url: str, config: ServingConfig, sim) -> int:
    ids = sorted(sim.patients["patient_id"])
    items = request_items(sim.patients, sim.events, ids, sim.data_end)
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=600) as client:
        for batch in batches(items, config.max_batch_size, config.max_body_bytes // 2):
            client.post("/score", json={"patients": batch}).raise_for_status()
    return len(ids)


TODAY = "#view-today:not([hidden]) .queue-item"
LIST = "#view-list:not([hidden]) #patients tbody tr"


def _signed_in(browser, url: str):
    """A fresh browser context signed in; the seconds from pressing Sign in until Today's queue is drawn."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(300_000)
    page.goto(f"{url}/ui/login")
    page.fill("#key", KEY)
    start = time.perf_counter()
    page.click("button[type=submit]")
    page.wait_for_selector(TODAY)
    return context, page, time.perf_counter() - start


def _open(page, url: str, view: str, selector: str) -> float:
    """Seconds from a full page load of `view` until `selector` is drawn."""
    page.goto("about:blank")
    start = time.perf_counter()
    page.goto(f"{url}/ui/{view}")
    page.wait_for_selector(selector)
    return time.perf_counter() - start


def _fetch(page) -> float:
    """The peer: seconds for the page to fetch and parse the overview JSON the list is drawn from."""
    return page.evaluate("""async () => { const t = performance.now(); const r = await fetch('api/overview');
        await r.json(); return (performance.now() - t) / 1000; }""")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--settle", type=float, default=30.0)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _, _, config, extra = _prepare(root, args.patients)
        url = f"http://127.0.0.1:{config.port}"
        log = open(root / "server.log", "wb")
        process = start_service(config, extra["env"], log)
        try:
            wait_ready(url, process, timeout=300)
            scored = _score_everyone(url, config, extra["sim"])
        finally:
            stop_service(process)
        # The first load after a restart: a fresh server process.
        process = start_service(config, extra["env"], log)
        try:
            wait_ready(url, process, timeout=300)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
                context, page, today_cold = _signed_in(browser, url)
                list_cold = _open(page, url, "#/patients", LIST)
                context.close()
                today, listing, fetch = [], [], []
                for _ in range(args.repeat):
                    context, page, _ = _signed_in(browser, url)
                    today.append(_open(page, url, "#/", TODAY))
                    listing.append(_open(page, url, "#/patients", LIST))
                    fetch.append(_fetch(page))
                    context.close()
                browser.close()
        finally:
            stop_service(process)
        # And once more, opened `--settle` seconds after the restart: the page reads the data folder at start-up.
        process = start_service(config, extra["env"], log)
        try:
            wait_ready(url, process, timeout=300)
            time.sleep(args.settle)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless"])
                context, page, today_settled = _signed_in(browser, url)
                context.close()
                browser.close()
        finally:
            stop_service(process)
            log.close()
    fetch = statistics.median(fetch)
    today_s = statistics.median(today)
    list_s = statistics.median(listing)
    print(f"patients scored: {scored}")
    print(f"first load after restart: Today {today_cold:.2f} s (from pressing Sign in), "
          f"then the full list {list_cold:.2f} s")
    print(f"first load {args.settle:.0f} s after another restart: Today {today_settled:.2f} s")
    print(f"warm loads (median of {args.repeat}): Today {today_s:.2f} s, full list {list_s:.2f} s")
    print(f"peer: the overview JSON fetched by the page {fetch:.2f} s (median); "
          f"Today/peer {today_s / fetch:.1f}x, list/peer {list_s / fetch:.1f}x")
    print(f"target under 2 s (warm and first load): Today {'met' if max(today_s, today_cold) < 2 else 'NOT met'}, "
          f"list {'met' if max(list_s, list_cold) < 2 else 'NOT met'}")


if __name__ == "__main__":
    main()
