"""The clinician page at /ui, in a real headless Chromium (Debian's, driven by Playwright) against a real
`lapse serve`: a model trained by the training job on a small simulated cohort, made champion by the real
promotion job (by override, with a reason) in a real MLflow SQLite store; patients scored through /score
before the page is opened. Screenshots of Today, the list, a patient and the model card, at desktop width
and at 390 px, go to $LAPSE_ARTIFACTS/ui (default .lapse/artifacts/ui)."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest

import sqlalchemy as sa

from config import DEFAULT_PATHS, ClinicianPageConfig, LabelConfig, ServingConfig, TrainingConfig, XGBoostParams
from features.catalog import THEME_WORDS, spec
from features.contract import OWN_ENGAGEMENT
from outreach.settings import PolicySettings
from simulation.settings import SimulationConfig
from features.contract import PATIENT_COLUMNS
from serving.launcher import free_port
from serving.payloads import json_value
from serving.settings import Hardening

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
KEY = "ui-key-5b0e71"
MODEL = "lapse-dropout"
# More than one page of the list (50 rows a page).
N_PATIENTS = 60
OVERRIDE = "pilot approved by the clinical lead while the holdout is small"
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js"
# Scores at these many days before the data ends, oldest first: each patient gets a history.
DAYS_BEFORE_END = (14, 7, 0)

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@dataclass
class Served:
    url: str
    log_path: Path
    latest: dict[str, dict]  # patient_id -> the /score answer at the latest as-of time
    patients: pd.DataFrame
    events: pd.DataFrame
    data_end: pd.Timestamp
    data_dir: Path
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
def served(tmp_path_factory, fresh_store) -> Served:
    """A trained champion, `lapse serve` with the cohort as its data folder, and scored patients."""
    from config import PromotionGates
    from features.io import write_table
    from serving.launcher import start_service, stop_service, wait_ready
    from simulation import simulate
    from training.job import run_training
    from training.promotion import promote

    root = tmp_path_factory.mktemp("ui")
    sim = simulate(SimulationConfig(n_patients=900, days=56))
    data = root / "data"
    for name, frame in (("patients", sim.patients), ("events", sim.events), ("truth", sim.truth)):
        write_table(frame, data, name)
    (data / "meta.json").write_text(json.dumps({"data_end": sim.data_end.isoformat()}))

    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    uri = fresh_store(root)
    training = TrainingConfig(xgboost=XGBoostParams(max_rounds=60, early_stopping_rounds=10), shap_plot_rows=200,
                              subgroups=("sex", "age_band"), subgroup_min_size=20, subgroup_min_positives=5)
    summary = run_training(data, training, tracking=uri)
    # A gate no model can pass, so the promotion is by override: the model page must say so, with the reason.
    promote(training, PromotionGates(min_auc=0.999), override_reason=OVERRIDE, tracking=uri)

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
        # The list is answered from its last build for up to overview_cache_s while decisions are logged:
        # after that long, the next load shows every score just made.
        time.sleep(Hardening().overview_cache_s)
    except Exception:
        stop_service(process, kill=True)
        raise RuntimeError(f"server did not start or score:\n{log_path.read_text()[-3000:]}")
    yield Served(url, log_path, latest, sim.patients, sim.events, sim.data_end, data, uri, config.decision_log_url,
                 summary.model_version)
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


TODAY = "#view-today:not([hidden])"
LIST = "#view-list:not([hidden])"
PATIENT = "#view-patient:not([hidden]) #patient-reasons li"


def open_list(page, served: Served) -> None:
    sign_in(page, served)
    page.wait_for_selector(TODAY)
    page.click("#nav-list")
    page.wait_for_selector(f"{LIST} #patients tbody tr")


def _shown_ids(page) -> list[str]:
    return page.locator("#patients tbody tr").evaluate_all("rows => rows.map(r => r.dataset.patient)")


def _all_ids(page) -> list[str]:
    """Every patient the list shows, page by page."""
    while not page.locator("#page-prev").is_disabled():
        page.click("#page-prev")
    ids = _shown_ids(page)
    while page.locator("#pager").is_visible() and not page.locator("#page-next").is_disabled():
        page.click("#page-next")
        ids += _shown_ids(page)
    return ids


def _percent(risk: float) -> str:
    return f"{math.floor(risk * 100 + 0.5)}%"


def _no_placeholders(text: str) -> None:
    """No value the page failed to fill in."""
    assert not re.search(r"\b(null|undefined|NaN|None)\b", text), text


def _theme(feature: str) -> str:
    return THEME_WORDS[spec(feature).theme]


def _idle_days(served: Served) -> dict[str, int]:
    """Whole days since each scored patient's last own use of the program before the latest score, from the
    simulated events (since enrolment if none)."""
    own = {str(t) for t in OWN_ENGAGEMENT}
    ev = served.events[served.events["event_type"].isin(own) & (served.events["timestamp"] < served.data_end)]
    last = ev.groupby("patient_id")["timestamp"].max()
    enrolled = served.patients.set_index("patient_id")["enrolled_at"]
    return {p: round((served.data_end - last.get(p, enrolled[p])) / pd.Timedelta(days=1)) for p in served.latest}


def _left(served: Served) -> set[str]:
    ev = served.events
    return set(ev.loc[(ev["event_type"] == "discontinued") & (ev["timestamp"] < served.data_end), "patient_id"])


def _axe_serious(page) -> list[str]:
    """axe-core's serious and critical violations on the page as it is now (axe vendored, no CDN)."""
    # Evaluated through the browser's debugging protocol: the page's own CSP rightly refuses inline scripts.
    if not page.evaluate("() => typeof window.axe === 'object'"):
        page.evaluate(AXE.read_text() + "\n;undefined")
    result = page.evaluate("async () => await axe.run(document, { resultTypes: ['violations'] })")
    return [f"{v['id']}: {v['help']} ({len(v['nodes'])})" for v in result["violations"]
            if v["impact"] in ("serious", "critical")]


# --- access -------------------------------------------------------------------------------------


def test_without_a_session_pages_redirect_to_sign_in_and_data_answers_401(served):
    with httpx.Client(base_url=served.url, follow_redirects=False, timeout=30) as client:
        page = client.get("/ui/")
        assert page.status_code == 303 and page.headers["location"].endswith("/ui/login")
        assert client.get("/ui/api/overview").status_code == 401
        assert client.get("/ui/api/today").status_code == 401
        assert client.get("/ui/api/model").status_code == 401
        some = next(iter(served.latest))
        assert client.post("/ui/api/patient", json={"patient_id": some}).status_code == 401
        assert client.post("/ui/api/mark", json={"patient_id": some, "mark": "reached"},
                           headers={"origin": served.url}).status_code == 401
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
        # Marks change what is stored: only from the page itself, and only the four marks.
        assert client.post("/ui/api/mark", json={"patient_id": some, "mark": "reached"}).status_code == 403
        bad = client.post("/ui/api/mark", json={"patient_id": some, "mark": "phoned"}, headers=here)
        assert bad.status_code == 422 and "contacted, reached, no_answer, declined" in bad.json()["error"]
        nobody = client.post("/ui/api/mark", json={"patient_id": "nobody-scored", "mark": "reached"}, headers=here)
        assert nobody.status_code == 404
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
    page.wait_for_selector(f"{TODAY} .queue-item")
    assert KEY not in page.url
    assert page.evaluate("() => window.localStorage.length + window.sessionStorage.length") == 0
    assert page.evaluate("() => document.cookie") == ""  # HttpOnly: the session is out of scripts' reach


# --- Today ----------------------------------------------------------------------------------------


def test_today_lists_the_policys_top_patients_within_capacity_in_two_sections(page, served, artifacts):
    sign_in(page, served)
    page.wait_for_selector(f"{TODAY} .queue-item")
    idle, left = _idle_days(served), _left(served)
    horizon = LabelConfig().horizon_days  # lapsed after the model's horizon without use (the default)
    capacity, threshold = ClinicianPageConfig().today_capacity, PolicySettings().risk_threshold
    # The risk policy: everyone at or above its threshold, highest risk first, up to the team's capacity;
    # a patient who left, or stopped more than recently_lapsed_days ago, is not for today.
    eligible = sorted((r for p, r in served.latest.items() if r["risk"] >= threshold and p not in left
                       and idle[p] <= ClinicianPageConfig().recently_lapsed_days),
                      key=lambda r: (-r["risk"], r["patient_id"]))[:capacity]
    expected = [r["patient_id"] for r in eligible]
    assert expected, "the test cohort should give Today someone to contact"
    shown = page.locator("#view-today .queue-item").evaluate_all("li => li.map(x => x.dataset.patient)")
    assert sorted(shown) == sorted(expected)
    for section, lapsed in (("#queue-slipping", False), ("#queue-lapsed", True)):
        ids = page.locator(f"{section} .queue-item").evaluate_all("li => li.map(x => x.dataset.patient)")
        assert ids == [p for p in expected if (idle[p] >= horizon) == lapsed]
        for why in page.locator(f"{section} .why-now").all_inner_texts():
            assert why and "\n" not in why and not re.search(r"%\s*risk", why)  # the row shows the risk once
            assert why.startswith("No use of the program") == lapsed
    ranks = page.locator("#view-today .queue-rank").all_inner_texts()
    assert sorted(int(r.rstrip(".")) for r in ranks) == list(range(1, len(expected) + 1))
    intro = page.locator("#today-intro").inner_text()
    assert f"{len(expected)} of the team's {capacity} contacts" in intro
    _no_placeholders(page.locator("main").inner_text())
    page.screenshot(path=str(artifacts / "today.png"), full_page=True)
    assert page.outside == [] and page.errors == []


def test_a_coach_marks_contacts_and_assigns_a_patient_and_the_marks_reach_the_outcomes_store(page, served):
    from outreach.outcomes import read_outcomes

    sign_in(page, served)
    page.wait_for_selector(f"{TODAY} .queue-item")
    row = page.locator("#view-today .queue-item").first
    patient = row.get_attribute("data-patient")
    before = len(read_outcomes(served.decisions_url))
    row.locator(".coach-input").fill("Coach Ana")
    row.locator(".assign-button").click()
    expect_text(row.locator(".assign-status"), "Assigned to Coach Ana")
    row.locator('button[data-mark="no_answer"]').click()
    expect_text(row.locator(".mark-status"), "No answer")
    row.locator('button[data-mark="reached"]').click()
    expect_text(row.locator(".mark-status"), "Reached")

    stored = read_outcomes(served.decisions_url).iloc[before:]
    engine = sa.create_engine(served.decisions_url)
    with engine.connect() as db:
        latest_id = db.execute(sa.text("SELECT id FROM decisions WHERE patient_id = :p ORDER BY as_of DESC, id DESC "
                                       "LIMIT 1"), {"p": patient}).scalar()
        coach = db.execute(sa.text("SELECT coach FROM coach_assignments WHERE patient_id = :p"),
                           {"p": patient}).scalar()
    engine.dispose()
    assert list(stored["kind"]) == ["no_answer", "reached"]
    assert set(stored["decision_id"]) == {str(latest_id)}
    assert coach == "Coach Ana"

    # After a reload the queue still shows the last mark and the coach; the patient page lists both contacts.
    page.reload()
    page.wait_for_selector(f"{TODAY} .queue-item")
    again = page.locator(f'#view-today .queue-item[data-patient="{patient}"]')
    assert again.locator(".mark-status").inner_text().startswith("Reached")
    assert again.locator(".coach-input").input_value() == "Coach Ana"
    again.locator("a.patient-link").click()
    page.wait_for_selector(PATIENT)
    history = page.locator("#patient-contact .mark-history li").all_inner_texts()
    assert [h.split(" · ")[0] for h in history] == ["Reached", "No answer"]
    assert all("Coach Ana" in h for h in history)
    assert page.outside == [] and page.errors == []


def expect_text(locator, text: str) -> None:
    from playwright.sync_api import expect

    expect(locator).to_contain_text(text)


# --- the list -------------------------------------------------------------------------------------


def test_the_list_shows_every_scored_patient_highest_risk_first_a_page_at_a_time(page, served, artifacts):
    open_list(page, served)
    expected = sorted(served.latest.values(), key=lambda r: (-r["risk"], r["patient_id"]))
    first_page = expected[:50]
    assert _shown_ids(page) == [r["patient_id"] for r in first_page]
    shown_risks = page.locator("#patients tbody .risk-value").all_inner_texts()
    assert shown_risks == [_percent(r["risk"]) for r in first_page]
    assert page.locator('#patients th[data-sort="risk"]').get_attribute("aria-sort") == "descending"
    tiers = page.locator("#patients tbody .tier").all_inner_texts()
    assert [t.strip().lower() for t in tiers] == [r["tier"] for r in first_page]
    # The main reason is the theme of the API's top reason that is not a background covariate.
    main = [t.lstrip("▲▼ ").strip() for t in page.locator("#patients tbody td.reason-cell").all_inner_texts()]
    themes = [next(_theme(x["feature"]) for x in r["reasons"] if spec(x["feature"]).theme != "background")
              for r in first_page]
    assert [m.split(":")[0] for m in main] == themes
    assert page.locator("#page-info").inner_text().startswith("Page 1 of 2")
    assert page.locator("#list-built").inner_text().startswith("List as of ")
    _no_placeholders(page.locator("main").inner_text())
    page.screenshot(path=str(artifacts / "list.png"), full_page=True)
    assert _all_ids(page) == [r["patient_id"] for r in expected]
    assert page.outside == [] and page.errors == []


def test_sorting_and_filtering(page, served):
    open_list(page, served)
    page.click('#patients th[data-sort="risk"] button')
    ascending = sorted(served.latest.values(), key=lambda r: (r["risk"], r["patient_id"]))
    assert page.locator('#patients th[data-sort="risk"]').get_attribute("aria-sort") == "ascending"
    shown = _all_ids(page)
    assert [served.latest[p]["risk"] for p in shown] == [r["risk"] for r in ascending]

    tier = max({r["tier"] for r in served.latest.values()}, key=lambda t: sum(
        r["tier"] == t for r in served.latest.values()))
    page.select_option("#filter-tier", tier)
    assert sorted(_all_ids(page)) == sorted(p for p, r in served.latest.items() if r["tier"] == tier)

    page.select_option("#filter-tier", "")
    program = served.patients.set_index("patient_id").loc[list(served.latest), "program"]
    first = program.iloc[0]
    page.select_option("#filter-program", first)
    assert sorted(_all_ids(page)) == sorted(program[program == first].index)
    assert f"of {len(served.latest)} patients" in page.locator("#list-count").inner_text()


# --- one patient ----------------------------------------------------------------------------------


def test_a_patient_shows_grouped_reasons_in_plain_words_and_values_over_time(page, served, artifacts):
    open_list(page, served)
    top = _shown_ids(page)[0]
    page.click(f'#patients a.patient-link[data-patient="{top}"]')
    page.wait_for_selector(PATIENT)
    api = served.latest[top]
    assert page.locator("#patient-title").inner_text() == f"Patient {top}"
    labels = [t.rstrip(": ") for t in page.locator("#patient-reasons .reason-text strong").all_inner_texts()]
    assert labels and len(labels) == len(set(labels)) and set(labels) <= set(THEME_WORDS.values())
    texts = page.locator("#patient-reasons .reason-text").all_inner_texts()
    assert all("not recorded" not in t.lower() and not re.search(r"(^|\s)[+-]\d", t) for t in texts)
    # The strongest theme is worded by the API's strongest reason of that theme.
    first_api = next(x for x in api["reasons"] if spec(x["feature"]).theme != "background")
    theme_api = [x for x in api["reasons"] if _theme(x["feature"]) == labels[0]]
    if theme_api:
        lead = theme_api[0]["sentence"].rsplit(" raises risk", 1)[0].rsplit(" lowers risk", 1)[0]
        assert texts[0].startswith(f"{labels[0]}: {lead}")
    assert _theme(first_api["feature"]) in labels
    # One risk figure on the page: the summary's; the support advice gives none.
    assert "%" not in page.locator("#patient-support").inner_text()
    assert _percent(api["risk"]) in page.locator("#patient-summary").inner_text() or \
        page.locator("#patient-summary .big").inner_text() in ("over 99%", "under 1%")
    assert page.locator("#patient-history circle.risk-point").count() == len(DAYS_BEFORE_END)
    assert page.locator("#patient-timeline svg.timeline-chart").count() == 1
    # Mood and questionnaire values over time, as the events hold them.
    ev = served.events[(served.events["patient_id"] == top) & (served.events["timestamp"] < served.data_end)]
    profile = served.patients.set_index("patient_id").loc[top]
    for kind, key in (("mood_checkin", "mood"), ("phq9", "phq9"), ("gad7", "gad7")):
        values = ev.loc[ev["event_type"] == kind, "value"].dropna()
        # PHQ-9 and GAD-7 start at the enrolment values of the patients table.
        start = None if key == "mood" else profile[f"baseline_{key}"]
        shown = len(values) + int(start is not None and not pd.isna(start))
        if shown:
            assert page.locator(f"#measure-{key}").count() == 1
            assert page.locator(f"#patient-measures svg[aria-labelledby='measure-{key}'] circle").count() == shown
            if start is not None and not pd.isna(start):
                assert f"At enrolment {float(start):g}." in page.locator(f"#measure-{key}").inner_text()
            if len(values) > 1:
                assert f"latest {round(float(values.iloc[-1]), 1):g}" in page.locator(f"#measure-{key}").inner_text()
    _no_placeholders(page.locator("main").inner_text())
    page.screenshot(path=str(artifacts / "patient.png"), full_page=True)
    assert page.outside == [] and page.errors == []


# --- keyboard, phone, accessibility -------------------------------------------------------------------


def test_keyboard_only_a_coach_opens_a_patient_from_today_marks_a_contact_and_returns(page, served):
    from outreach.outcomes import read_outcomes

    sign_in(page, served)
    page.wait_for_selector(f"{TODAY} .queue-item")
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.classList.contains('patient-link')"):
            break
    else:
        pytest.fail("Tab never reached a patient in Today's queue")
    focused = page.evaluate("() => document.activeElement.dataset.patient")
    page.keyboard.press("Enter")
    page.wait_for_selector(PATIENT)
    assert page.locator("#patient-title").inner_text() == f"Patient {focused}"
    assert page.evaluate("() => document.activeElement.id") == "patient-title"
    before = len(read_outcomes(served.decisions_url))
    for _ in range(40):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement.dataset.mark === 'contacted'"):
            break
    else:
        pytest.fail("Tab never reached the Contacted button on the patient page")
    page.keyboard.press("Enter")
    expect_text(page.locator("#patient-contact .mark-status"), "Contacted")
    assert list(read_outcomes(served.decisions_url).iloc[before:]["kind"]) == ["attempted"]
    # Back to Today: focus returns to the patient that was open.
    page.go_back()
    page.wait_for_selector(TODAY)
    page.wait_for_function("() => document.activeElement.classList.contains('patient-link')")
    assert page.evaluate("() => document.activeElement.dataset.patient") == focused


def test_at_390_px_nothing_scrolls_sideways_and_the_timeline_opens_on_the_latest_days(browser, served, artifacts):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        sign_in(page, served)
        page.wait_for_selector(f"{TODAY} .queue-item")
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 390
        page.screenshot(path=str(artifacts / "today-390.png"), full_page=True)
        page.click("#nav-list")
        page.wait_for_selector(f"{LIST} #patients tbody tr")
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 390
        page.screenshot(path=str(artifacts / "list-390.png"), full_page=True)
        page.locator("#patients a.patient-link").first.click()
        page.wait_for_selector(PATIENT)
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 390
        left, width, total = page.evaluate("""() => { const w = document.querySelector('#patient-timeline .chart-wrap');
            return [w.scrollLeft, w.clientWidth, w.scrollWidth]; }""")
        assert total > width and left + width >= total - 1  # scrolled to the newest (right) end
        page.screenshot(path=str(artifacts / "patient-390.png"), full_page=True)
        page.click("#nav-model")
        page.wait_for_selector("#view-model:not([hidden]) #model-card section")
        assert page.evaluate("() => document.scrollingElement.scrollWidth") <= 390
        page.screenshot(path=str(artifacts / "model-card-390.png"), full_page=True)
    finally:
        context.close()


def test_axe_finds_no_serious_accessibility_violations_on_any_view(page, served):
    sign_in(page, served)
    page.wait_for_selector(f"{TODAY} .queue-item")
    found = {"today": _axe_serious(page)}
    page.click("#nav-list")
    page.wait_for_selector(f"{LIST} #patients tbody tr")
    found["list"] = _axe_serious(page)
    page.locator("#patients a.patient-link").first.click()
    page.wait_for_selector(PATIENT)
    found["patient"] = _axe_serious(page)
    page.click("#nav-model")
    page.wait_for_selector("#view-model:not([hidden]) #model-card section")
    found["model"] = _axe_serious(page)
    assert found == {"today": [], "list": [], "patient": [], "model": []}


# --- the model card ---------------------------------------------------------------------------------


def test_the_model_card_says_how_the_version_was_promoted_and_its_accuracy_and_limits(page, served, artifacts):
    sign_in(page, served)
    page.wait_for_selector(TODAY)
    page.click("#nav-model")
    page.wait_for_selector("#view-model:not([hidden]) #model-card section")
    text = page.locator("#model-card").inner_text()
    version = next(iter(served.latest.values()))["model"]["version"]
    assert f"version {version}" in text
    promotion = page.locator("#promotion").inner_text()
    assert "by an override" in promotion and OVERRIDE in promotion
    assert "failed the checks for ranking patients well enough" in promotion
    assert "approved for use" not in text
    for heading in ("What it learned from", "How accurate it is", "What it cannot see", "Risk levels and support"):
        assert heading in text
    assert "Ranking:" in text and "%" in text
    assert "_" not in text  # clinician words, no feature names
    _no_placeholders(text)
    page.screenshot(path=str(artifacts / "model-card.png"), full_page=True)
    assert page.outside == [] and page.errors == []


def test_server_logs_hold_no_patient_values_from_the_page(served, page):
    open_list(page, served)
    opened = _shown_ids(page)[0]
    page.click(f'#patients a.patient-link[data-patient="{opened}"]')
    page.wait_for_selector(PATIENT)
    logs = served.logs()
    answer = served.latest[opened]
    assert opened not in logs  # the page sends identifiers in bodies, never in logged URLs
    for reason in answer["reasons"]:
        assert reason["sentence"] not in logs
    assert repr(answer["risk"])[:8] not in logs
    assert KEY not in logs


# --- in process ----------------------------------------------------------------------------------------


def _in_process_model(served: Served):
    import mlflow

    from serving.model_store import ModelStore

    # The registry lookup behind a models:/ URI follows MLflow's current registry URI.
    mlflow.set_tracking_uri(served.tracking_uri)
    mlflow.set_registry_uri(served.tracking_uri)
    return ModelStore(ServingConfig(), served.tracking_uri).load_version(served.version)


def test_reasons_are_recomputed_when_the_log_mixes_times_with_and_without_fractions_of_a_second(served):
    """The log keeps as-of times as sent; one with fractional seconds beside whole ones must still parse."""
    from serving.timeline import CohortSource
    from serving.ui_data import recompute

    model = _in_process_model(served)
    ids = sorted(served.latest)[:2]
    fraction = (served.data_end - pd.Timedelta(milliseconds=1500)).isoformat()
    assert "." in fraction and "." not in served.data_end.isoformat()
    with httpx.Client(base_url=served.url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as client:
        profile = served.patients.set_index("patient_id").loc[ids[0]]
        ev = served.events[(served.events["patient_id"] == ids[0]) & (served.events["timestamp"] < fraction)]
        item = {"patient_id": ids[0], "as_of": fraction,
                "profile": {c.name: json_value(profile[c.name]) for c in PATIENT_COLUMNS if c.name != "patient_id"},
                "events": [{"timestamp": t.isoformat(), "event_type": k, "value": json_value(v)}
                           for t, k, v in zip(ev["timestamp"], ev["event_type"], ev["value"])]}
        risk = client.post("/score", json={"patients": [item]}).raise_for_status().json()["results"][0]["risk"]
    logged = [{"patient_id": ids[0], "as_of": fraction, "model_version": model.version, "risk": risk},
              {"patient_id": ids[1], "as_of": served.data_end.isoformat(), "model_version": model.version,
               "risk": served.latest[ids[1]]["risk"]}]
    answers = recompute(model, CohortSource(served.data_dir), logged, 5)
    assert set(answers) == set(ids)
    api = served.latest[ids[1]]["reasons"]
    assert [r.sentence for r in answers[ids[1]].score.reasons] == [r["sentence"] for r in api]


def test_without_a_data_folder_the_page_shows_the_logged_themes_and_says_the_timeline_is_unavailable(served):
    """The same page app in-process, on the served version and the service's decision log, with no data folder."""
    from starlette.testclient import TestClient

    from serving.auth import KeyRing
    from serving.decision_log import make_engine
    from serving.ui import ClinicianPage

    model = _in_process_model(served)
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
            top = next(p for p in listing["patients"] if p["patient_id"] in served.latest)
            api = served.latest[top["patient_id"]]
            first = next(x for x in api["reasons"] if spec(x["feature"]).theme != "background")
            assert top["top_reason"] == {"label": _theme(first["feature"]),
                                         "direction": "raises" if first["contribution"] > 0 else "lowers"}
            assert top["state"] == "Not known"
            view = client.post("/api/patient", json={"patient_id": top["patient_id"]}).json()
            assert view["reasons"]["source"] == "logged" and "not the patient's values" in view["reasons"]["note"]
            assert [r["label"] for r in view["reasons"]["items"]][0] == _theme(first["feature"])
            assert view["timeline"]["available"] is False and "--data" in view["timeline"]["note"]
            assert view["program"] == served.patients.set_index("patient_id").loc[top["patient_id"], "program"]
            missing = client.post("/api/patient", json={"patient_id": "nobody-scored"})
            assert missing.status_code == 404
            assert client.post("/api/patient", content=b"x" * 10_000,
                               headers={"content-type": "application/json"}).status_code == 413
            today = client.get("/api/today").json()
            assert today["activity_known"] is False and len(today["patients"]) <= today["capacity"]
    finally:
        app.stop()
        engine.dispose()
