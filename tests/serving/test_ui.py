"""The clinician page at /ui, in a real headless Chromium (Debian's, driven by Playwright) against a real
`lapse serve`: a model trained by the training job on a small simulated cohort, registered as champion in
a real MLflow SQLite store; patients scored through /score before the page is opened. Screenshots of the
list, a patient and the model card go to $LAPSE_ARTIFACTS/ui (default .lapse/artifacts/ui)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

from config import DEFAULT_PATHS, ServingConfig, TrainingConfig, XGBoostParams
from simulation.settings import SimulationConfig
from features.contract import PATIENT_COLUMNS
from serving.launcher import free_port
from serving.payloads import json_value

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
KEY = "ui-key-5b0e71"
MODEL = "lapse-dropout"
N_PATIENTS = 30
# Scores at these many days before the data ends, oldest first: each patient gets a history.
DAYS_BEFORE_END = (14, 7, 0)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@dataclass
class Served:
    url: str
    log_path: Path
    latest: dict[str, dict]  # patient_id -> the /score answer at the latest as-of time
    patients: pd.DataFrame
    tracking_uri: str
    decisions_url: str
    version: str

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture(scope="module")
def artifacts() -> Path:
    root = Path(os.environ.get("LAPSE_ARTIFACTS") or DEFAULT_PATHS.work / "artifacts")
    out = root / "ui"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Served:
    """A trained champion, `lapse serve` with the cohort as its data folder, and scored patients."""
    from mlflow import MlflowClient

    from features.io import write_table
    from serving.launcher import start_service, stop_service, wait_ready
    from simulation import simulate
    from training.job import run_training

    root = tmp_path_factory.mktemp("ui")
    sim = simulate(SimulationConfig(n_patients=900, days=56))
    data = root / "data"
    for name, frame in (("patients", sim.patients), ("events", sim.events), ("truth", sim.truth)):
        write_table(frame, data, name)
    (data / "meta.json").write_text(json.dumps({"data_end": sim.data_end.isoformat()}))

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    uri = f"sqlite:///{root / 'mlflow.db'}"
    training = TrainingConfig(xgboost=XGBoostParams(max_rounds=60, early_stopping_rounds=10), shap_plot_rows=200,
                              subgroups=("sex", "age_band"), subgroup_min_size=20, subgroup_min_positives=5)
    summary = run_training(data, training, tracking=uri)
    MlflowClient(uri, registry_uri=uri).set_registered_model_alias(MODEL, "champion", summary.model_version)

    config = ServingConfig(port=free_port(), decision_log_url=f"sqlite:///{root / 'decisions.db'}",
                           data_dir=str(data), warmup_predictions=4)
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "LAPSE_API_KEYS": KEY, "BENTOML_DO_NOT_TRACK": "True"}
    env.pop("LAPSE_API_KEYS_FILE", None)
    log_path = root / "server.log"
    with open(log_path, "wb") as out:
        process = start_service(config, env, out)
    url = f"http://127.0.0.1:{config.port}"
    try:
        wait_ready(url, process, timeout=180)
        latest = _score(url, sim.patients, sim.events, sim.data_end)
    except Exception:
        stop_service(process, kill=True)
        raise RuntimeError(f"server did not start or score:\n{log_path.read_text()[-3000:]}")
    yield Served(url, log_path, latest, sim.patients, uri, config.decision_log_url, summary.model_version)
    stop_service(process)


def _score(url: str, patients: pd.DataFrame, events: pd.DataFrame, data_end: pd.Timestamp) -> dict[str, dict]:
    """Score N_PATIENTS patients through /score at each as-of time, as a program would (profile + events)."""
    old_enough = patients[patients["enrolled_at"] < data_end - pd.Timedelta(days=max(DAYS_BEFORE_END) + 3)]
    chosen = old_enough.sample(N_PATIENTS, random_state=7)
    mine = events[events["patient_id"].isin(chosen["patient_id"])]
    answers: dict[str, dict] = {}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        for back in DAYS_BEFORE_END:
            as_of = data_end - pd.Timedelta(days=back)
            items = []
            for _, row in chosen.iterrows():
                ev = mine[(mine["patient_id"] == row["patient_id"]) & (mine["timestamp"] < as_of)]
                items.append({
                    "patient_id": row["patient_id"], "as_of": as_of.isoformat(),
                    "profile": {c.name: json_value(row[c.name]) for c in PATIENT_COLUMNS if c.name != "patient_id"},
                    "events": [{"timestamp": t.isoformat(), "event_type": k, "value": json_value(v)}
                               for t, k, v in zip(ev["timestamp"], ev["event_type"], ev["value"])]})
            response = client.post("/score", json={"patients": items})
            response.raise_for_status()
            answers = {r["patient_id"]: r for r in response.json()["results"]}
    return answers


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, served):
    """A fresh browser context (no cookies) that records requests leaving for anywhere but the service."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.outside = []
    pg.errors = []
    pg.on("request", lambda r: None if r.url.startswith(served.url) else pg.outside.append(r.url))
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    yield pg
    context.close()


def sign_in(page, served: Served, key: str = KEY) -> None:
    page.goto(f"{served.url}/ui/")
    page.fill("#key", key)
    page.click("button[type=submit]")


def _shown_ids(page) -> list[str]:
    return page.locator("#patients tbody tr").evaluate_all("rows => rows.map(r => r.dataset.patient)")


def _percent(risk: float) -> str:
    return f"{math.floor(risk * 100 + 0.5)}%"


def _no_placeholders(text: str) -> None:
    """No value the page failed to fill in."""
    assert not re.search(r"\b(null|undefined|NaN|None)\b", text), text


# --- access -------------------------------------------------------------------------------------


def test_without_a_session_pages_redirect_to_sign_in_and_data_answers_401(served):
    with httpx.Client(base_url=served.url, follow_redirects=False, timeout=30) as client:
        page = client.get("/ui/")
        assert page.status_code == 303 and page.headers["location"].endswith("/ui/login")
        assert client.get("/ui/api/overview").status_code == 401
        assert client.get("/ui/api/model").status_code == 401
        some = next(iter(served.latest))
        assert client.post("/ui/api/patient", json={"patient_id": some}).status_code == 401
        # An API key in a header is not a session; a forged session cookie is refused.
        assert client.get("/ui/api/overview", headers={"Authorization": f"Bearer {KEY}"}).status_code == 401
        forged = "v1.9999999999.AAAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
        assert client.get("/ui/api/overview", cookies={"lapse_session": forged}).status_code == 401

        elsewhere = client.post("/ui/login", data={"key": KEY}, headers={"origin": "https://elsewhere.example"})
        assert elsewhere.status_code == 403 and "set-cookie" not in elsewhere.headers
        here = {"origin": served.url}  # browsers send Origin on every POST; one without it is refused
        assert client.post("/ui/login", data={"key": KEY}).status_code == 403
        wrong = client.post("/ui/login", data={"key": "not-the-key"}, headers=here)
        assert wrong.status_code == 401 and "set-cookie" not in wrong.headers
        good = client.post("/ui/login", data={"key": KEY}, headers=here)
        assert good.status_code == 303 and good.headers["location"].endswith("/ui/")
        cookie = good.headers["set-cookie"]
        assert "HttpOnly" in cookie and re.search(r"SameSite=strict", cookie, re.I) and "Path=/ui/" in cookie
        assert KEY not in cookie and KEY not in good.headers["location"]
        assert client.get("/ui/api/overview").status_code == 200
        signed_out = client.post("/ui/logout", headers=here)
        assert signed_out.status_code == 303
        client.cookies.clear()
        assert client.get("/ui/api/overview").status_code == 401


def test_the_browser_is_refused_without_a_key_or_with_a_wrong_one(page, served):
    page.goto(f"{served.url}/ui/")
    assert page.url.endswith("/ui/login")
    assert page.locator("#patients").count() == 0
    sign_in(page, served, "a-wrong-key")
    assert page.url.endswith("/ui/login")
    assert "not accepted" in page.locator("#login-error").inner_text()
    assert page.locator("#patients").count() == 0
    sign_in(page, served)
    page.wait_for_selector("#patients tbody tr")
    assert KEY not in page.url
    assert page.evaluate("() => window.localStorage.length + window.sessionStorage.length") == 0
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: the session is out of scripts' reach


# --- the list -------------------------------------------------------------------------------------


def test_the_list_shows_the_scored_patients_highest_risk_first(page, served, artifacts):
    sign_in(page, served)
    page.wait_for_selector("#patients tbody tr")
    expected = sorted(served.latest.values(), key=lambda r: (-r["risk"], r["patient_id"]))
    assert _shown_ids(page) == [r["patient_id"] for r in expected]
    shown_risks = page.locator("#patients tbody .risk-value").all_inner_texts()
    assert shown_risks == [_percent(r["risk"]) for r in expected]
    assert page.locator('#patients th[data-sort="risk"]').get_attribute("aria-sort") == "descending"
    tiers = page.locator("#patients tbody .tier").all_inner_texts()
    assert [t.strip().lower() for t in tiers] == [r["tier"] for r in expected]
    # The main reason is the API's top reason, in its words.
    main = [t.lstrip("▲▼ ").strip() for t in page.locator("#patients tbody td.reason-cell").all_inner_texts()]
    assert main == [r["reasons"][0]["sentence"] for r in expected]
    assert page.locator("#patients tbody tr").first.locator("td.change").inner_text().strip() != ""
    _no_placeholders(page.locator("main").inner_text())
    page.screenshot(path=str(artifacts / "list.png"), full_page=True)
    assert page.outside == [] and page.errors == []


def test_sorting_and_filtering(page, served):
    sign_in(page, served)
    page.wait_for_selector("#patients tbody tr")
    page.click('#patients th[data-sort="risk"] button')
    ascending = sorted(served.latest.values(), key=lambda r: (r["risk"], r["patient_id"]))
    assert page.locator('#patients th[data-sort="risk"]').get_attribute("aria-sort") == "ascending"
    shown = _shown_ids(page)
    assert [served.latest[p]["risk"] for p in shown] == [r["risk"] for r in ascending]

    tier = max({r["tier"] for r in served.latest.values()}, key=lambda t: sum(
        r["tier"] == t for r in served.latest.values()))
    page.select_option("#filter-tier", tier)
    assert sorted(_shown_ids(page)) == sorted(p for p, r in served.latest.items() if r["tier"] == tier)

    page.select_option("#filter-tier", "")
    program = served.patients.set_index("patient_id").loc[list(served.latest), "program"]
    first = program.iloc[0]
    page.select_option("#filter-program", first)
    assert sorted(_shown_ids(page)) == sorted(program[program == first].index)
    assert f"of {len(served.latest)} patients" in page.locator("#list-count").inner_text()


# --- one patient ----------------------------------------------------------------------------------


def test_a_patient_shows_exactly_the_reasons_the_api_returned(page, served, artifacts):
    sign_in(page, served)
    page.wait_for_selector("#patients tbody tr")
    top = _shown_ids(page)[0]
    page.click(f'a.patient-link[data-patient="{top}"]')
    page.wait_for_selector("#view-patient:not([hidden]) #patient-reasons li")
    api = served.latest[top]
    assert page.locator("#patient-title").inner_text() == f"Patient {top}"
    assert page.locator("#patient-reasons .reason-text").all_inner_texts() == [r["sentence"] for r in api["reasons"]]
    directions = page.locator("#patient-reasons .reason-direction").all_inner_texts()
    assert [("raises" in d) for d in directions] == [r["contribution"] > 0 for r in api["reasons"]]
    assert page.locator("#patient-support .support-why").inner_text() == api["support"]["why"]
    assert _percent(api["risk"]) in page.locator("#patient-summary").inner_text()
    history = page.locator("#patient-history circle.risk-point").count()
    assert history == len(DAYS_BEFORE_END)
    assert page.locator("#patient-timeline svg.timeline-chart").count() == 1
    assert re.search(r"Active on \d+ of the last \d+ days", page.locator("#timeline-summary").inner_text())
    _no_placeholders(page.locator("main").inner_text())
    page.screenshot(path=str(artifacts / "patient.png"), full_page=True)
    assert page.outside == [] and page.errors == []


def test_keyboard_reaches_a_patient_row_and_opens_it_with_enter(page, served):
    sign_in(page, served)
    page.wait_for_selector("#patients tbody tr")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('patient-link')"):
            break
    else:
        pytest.fail("Tab never reached a patient in the list")
    focused = page.evaluate("() => document.activeElement.dataset.patient")
    page.keyboard.press("Enter")
    page.wait_for_selector("#view-patient:not([hidden]) #patient-reasons li")
    assert page.locator("#patient-title").inner_text() == f"Patient {focused}"
    assert page.evaluate("() => document.activeElement.id") == "patient-title"
    # Back to the list: focus returns to the patient that was open.
    page.go_back()
    page.wait_for_selector("#view-list:not([hidden])")
    page.wait_for_function("() => document.activeElement.classList.contains('patient-link')")
    assert page.evaluate("() => document.activeElement.dataset.patient") == focused


# --- the model card ---------------------------------------------------------------------------------


def test_the_model_card_says_version_training_accuracy_and_limits(page, served, artifacts):
    sign_in(page, served)
    page.wait_for_selector("#patients tbody tr")
    page.click("#nav-model")
    page.wait_for_selector("#view-model:not([hidden]) #model-card section")
    text = page.locator("#model-card").inner_text()
    version = next(iter(served.latest.values()))["model"]["version"]
    assert f"version {version}" in text
    for heading in ("What it learned from", "How accurate it is", "What it cannot see", "Risk levels and support"):
        assert heading in text
    assert "Ranking:" in text and "%" in text
    assert "_" not in text  # clinician words, no feature names
    _no_placeholders(text)
    page.screenshot(path=str(artifacts / "model-card.png"), full_page=True)
    assert page.outside == [] and page.errors == []


def test_server_logs_hold_no_patient_values_from_the_page(served, page):
    sign_in(page, served)
    page.wait_for_selector("#patients tbody tr")
    opened = _shown_ids(page)[0]
    page.click(f'a.patient-link[data-patient="{opened}"]')
    page.wait_for_selector("#view-patient:not([hidden]) #patient-reasons li")
    logs = served.logs()
    answer = served.latest[opened]
    assert opened not in logs  # the page sends identifiers in bodies, never in logged URLs
    for reason in answer["reasons"]:
        assert reason["sentence"] not in logs
    assert repr(answer["risk"])[:8] not in logs
    assert KEY not in logs


def test_without_a_data_folder_the_page_shows_the_logged_factors_and_says_the_timeline_is_unavailable(served):
    """The same page app in-process, on the served version and the service's decision log, with no data folder."""
    from starlette.testclient import TestClient

    from serving.auth import KeyRing
    from serving.decision_log import make_engine
    from serving.model_store import ModelStore
    from serving.ui import ClinicianPage

    import mlflow

    # The registry lookup behind a models:/ URI follows MLflow's current registry URI.
    mlflow.set_tracking_uri(served.tracking_uri)
    mlflow.set_registry_uri(served.tracking_uri)
    model = ModelStore(ServingConfig(), served.tracking_uri).load_version(served.version)
    assert model.version == served.version
    app = ClinicianPage(keys=KeyRing(env_keys=(KEY,)))
    engine = make_engine(served.decisions_url)
    app.attach(lambda: model, engine, None, 5)
    try:
        with TestClient(app, base_url="http://127.0.0.1") as client:
            assert client.post("/login", data={"key": KEY}, headers={"origin": "http://127.0.0.1"},
                               follow_redirects=False).status_code == 303
            listing = client.get("/api/overview").json()
            assert listing["timeline_available"] is False
            top = listing["patients"][0]
            api = served.latest[top["patient_id"]]
            assert top["top_reason"] == {"label": api["reasons"][0]["label"],
                                         "direction": "raises" if api["reasons"][0]["contribution"] > 0 else "lowers"}
            view = client.post("/api/patient", json={"patient_id": top["patient_id"]}).json()
            assert view["reasons"]["source"] == "logged" and "not the patient's values" in view["reasons"]["note"]
            assert [r["label"] for r in view["reasons"]["items"]] == [r["label"] for r in api["reasons"]]
            assert view["timeline"]["available"] is False and "--data" in view["timeline"]["note"]
            assert view["program"] == served.patients.set_index("patient_id").loc[top["patient_id"], "program"]
            missing = client.post("/api/patient", json={"patient_id": "nobody-scored"})
            assert missing.status_code == 404
            assert client.post("/api/patient", content=b"x" * 10_000,
                               headers={"content-type": "application/json"}).status_code == 413
    finally:
        engine.dispose()
