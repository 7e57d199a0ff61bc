"""The engagement report page in a real headless Chromium (Debian's, driven by Playwright), opened from the
file `make_report` writes for a simulated cohort: the findings come first, the page fits a 390 px phone,
intervals never wrap, tables scroll inside their own box by keyboard, and axe-core (vendored in
tests/vendor/axe.min.js, no CDN) finds no serious or critical accessibility violation. Screenshots at
1280 and 390 px go to $LAPSE_ARTIFACTS/report (default .lapse/artifacts/report)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from config import DEFAULT_PATHS
from features.io import write_table
from reporting.files import make_report
from reporting.pdf import write_pdf, write_pdf_or_reason
from simulation import simulate
from simulation.settings import SimulationConfig

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe.min.js"
PHONE, DESKTOP = 390, 1280
WIDTHS = (DESKTOP, PHONE)


def viewport(width: int) -> dict:
    """Context options for a desktop window, or a phone (a mobile viewport honours the page's viewport meta)."""
    phone = {"is_mobile": True, "has_touch": True, "device_scale_factor": 3} if width == PHONE else {}
    return {"viewport": {"width": width, "height": 900}, **phone}

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory) -> Path:
    """report.html written by make_report for a simulated cohort of 900 patients over 120 days."""
    root = tmp_path_factory.mktemp("report_page")
    data = root / "data"
    cohort = simulate(replace(SimulationConfig(), n_patients=900, days=120, seed=7))
    write_table(cohort.patients, data, "patients")
    write_table(cohort.events, data, "events")
    (data / "meta.json").write_text(json.dumps({"data_end": cohort.data_end.isoformat()}))
    return make_report(data, root / "out")["report.html"]


@pytest.fixture(scope="module")
def artifacts() -> Path:
    out = Path(os.environ.get("LAPSE_ARTIFACTS") or DEFAULT_PATHS.work / "artifacts") / "report"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    return out


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def page(request, browser, report_file):
    """The report at one viewport width; every request for anything but the file itself is recorded."""
    context = browser.new_context(**viewport(request.param))
    pg = context.new_page()
    pg.outside = []
    pg.on("request", lambda r: None if r.url.startswith(("file://", "data:")) else pg.outside.append(r.url))
    pg.goto(report_file.as_uri())
    yield pg
    context.close()


def test_key_findings_are_the_first_content_and_visible_without_scrolling(page):
    first = page.evaluate("() => document.querySelector('main').firstElementChild.id")
    assert first == "findings"
    headings = page.locator("h2").all_inner_texts()
    assert headings[0] == "Key findings" and headings[-1] == "Definitions and methods"
    uptake = page.locator("#finding-uptake")
    assert uptake.is_visible()
    assert uptake.bounding_box()["y"] < 900  # in the first screen, at 390 px too
    assert "%" in uptake.locator(".figure").inner_text()
    cards = page.locator("ul.findings > li").count()
    assert cards == 6
    assert page.outside == []  # self-contained: nothing is fetched


def test_the_page_never_scrolls_sideways_and_charts_scale(page):
    width = page.viewport_size["width"]
    assert page.evaluate("() => document.documentElement.scrollWidth") <= width
    widest_image = page.evaluate("() => Math.max(...[...document.images].map(i => i.getBoundingClientRect().right))")
    assert widest_image <= width
    assert page.locator("img").count() > 10


def test_intervals_stay_on_one_line_and_numbers_are_right_aligned(page):
    lines = page.evaluate("() => [...document.querySelectorAll('.ci')].map(e => e.getClientRects().length)")
    assert len(lines) > 50
    assert set(lines) == {1}
    aligned = page.evaluate(
        "() => [...document.querySelectorAll('td')].map(td => getComputedStyle(td).textAlign)")
    assert set(aligned) == {"right"}


def test_no_serious_or_critical_accessibility_violations(page):
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    serious = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
               for v in result["violations"] if v["impact"] in ("serious", "critical")]
    assert serious == []
    assert result["passes"]  # axe really ran its rules


def test_wide_tables_scroll_in_their_own_box_by_keyboard(browser, report_file):
    context = browser.new_context(**viewport(PHONE))
    pg = context.new_page()
    pg.goto(report_file.as_uri())
    wrap = pg.locator("#table-sub-level").locator("xpath=..")
    overflow = wrap.evaluate("w => w.scrollWidth - w.clientWidth")
    assert overflow > 0  # this table is wider than a phone: it scrolls inside its box
    # Tab from the top of the page until the table's box has the focus (every table box is a tab stop).
    for _ in range(40):
        pg.keyboard.press("Tab")
        if pg.evaluate("() => document.activeElement.querySelector('table')?.id") == "table-sub-level":
            break
    else:
        pytest.fail("the wide table's box never took the keyboard focus")
    assert wrap.evaluate("w => getComputedStyle(w).outlineStyle") != "none"  # the focus is visible
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowRight")
    # Keyboard scrolling may be animated: wait (up to 5 s) for the box to have moved sideways.
    pg.wait_for_function("w => w.scrollLeft > 0", arg=wrap.element_handle(), timeout=5000)
    assert pg.evaluate("() => document.documentElement.scrollWidth") <= PHONE
    context.close()


def test_screenshots(browser, report_file, artifacts):
    """Screenshots for a human to look at: the first screen and the whole page at each width."""
    for width in WIDTHS:
        context = browser.new_context(**viewport(width))
        pg = context.new_page()
        pg.goto(report_file.as_uri())
        pg.screenshot(path=str(artifacts / f"report-{width}-top.png"))
        pg.screenshot(path=str(artifacts / f"report-{width}-full.png"), full_page=True)
        height = pg.evaluate("() => document.documentElement.scrollHeight")
        context.close()
        assert (artifacts / f"report-{width}-top.png").stat().st_size > 10_000
        assert height > 900


def test_pdf_is_printed_by_chromium_and_world_readable(report_file):
    pdf = write_pdf(report_file)
    assert pdf == report_file.with_name("report.pdf")
    data = pdf.read_bytes()
    assert data.startswith(b"%PDF-")
    assert len(data) > 50_000  # the figures are in it
    assert stat.S_IMODE(pdf.stat().st_mode) == 0o644
    assert write_pdf_or_reason(report_file) == str(pdf)

