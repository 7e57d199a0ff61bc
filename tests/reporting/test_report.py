"""The engagement report: hand-computed numbers on a tiny cohort, the HTML page and the CLI."""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import replace
from html.parser import HTMLParser
from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from cli.main import main
from config import LabelConfig, ProgramConfig, ReportConfig
from simulation.settings import SimulationConfig
from reporting import build_report, render_html
from reporting import elements
from reporting import html as html_module
from reporting.files import write_files
from reporting.findings import key_findings
from reporting.formats import date_words, month_span_words
from reporting.html import SECTIONS
from features.covariates import subgroup_frame
from reporting.pdf import PdfUnavailable, write_pdf, write_pdf_or_reason
from reporting.subgroups import NOT_RECORDED, complementary, suppress_shares, suppress_sizes
from reporting.survival import kaplan_meier, median_survival, survival_at

DATA_END = pd.Timestamp("2026-03-01", tz="UTC")
# Small settings so that the hand-written cohort exercises every rule: weeks 1-4 (a 28-day
# window), uptake within 5 days, 2 sessions a week and 2 core modules as the dose.
CONFIG = ReportConfig(min_cell=1, weeks=4, uptake_days=5, survival_days=(7, 14, 28), subgroup_survival_day=14)
PROGRAM = ProgramConfig(sessions_per_week=2, core_modules=2)
LABELS = LabelConfig()  # inactivity window 14 days, definition "either"

# Days before data_end each patient enrolled, and their events as (day since enrolment, type, value).
ENROLLED_DAYS_AGO = {"zq1": 60, "zq2": 60, "zq3": 20, "zq4": 60, "zq5": 10, "zq6": 40, "zq7": 60}
SEX = {"zq1": "female", "zq2": "female", "zq3": "male", "zq4": "female", "zq5": "other", "zq6": "female", "zq7": "male"}
EVENTS = {
    # last use day 9 -> dropout at day 10 (>= 14 quiet days observed before data_end)
    "zq1": [(0.5, "session", 10), (1.5, "session", 20), (2.5, "session", 30), (9.5, "session", 15),
            (1.5, "module_completed", 1), (2.5, "module_completed", 2), (9.6, "module_completed", 2),
            (3.5, "mood_checkin", 6)],
    # still using on day 50 of 60: censored at day 60 - 14 = 46; the day-61 session is after data_end
    "zq2": [(0.25, "session", 5), (7.5, "session", 10), (14.5, "session", 10), (21.5, "session", 10),
            (50.5, "session", 10), (7.5, "module_completed", 1), (61.0, "session", 10)],
    # follow-up 20 days: inactivity cannot be seen yet (10 + 1 > 20 - 14), explicit discontinuation on day 12
    "zq3": [(1.5, "session", 10), (10.5, "session", 10), (12.5, "discontinued", np.nan)],
    # never used the program (a reminder is not use)
    "zq4": [(1.0, "reminder_sent", np.nan)],
    # enrolled 10 days ago: a user, but too recent to assess for dropout
    "zq5": [(3.5, "session", 10)],
    # an event before enrolment is ignored; last use day 20 -> dropout at 21 <= 40 - 14
    "zq6": [(-1.0, "mood_checkin", 5), (5.5, "mood_checkin", 5), (6.5, "session", 12), (8.5, "session", 8),
            (20.5, "session", 20)],
    # a module without a number counts once; last use day 9 -> dropout at 10
    "zq7": [(0.5, "session", 30), (1.5, "session", 30), (9.2, "session", 30), (1.5, "module_completed", 1),
            (9.2, "module_completed", np.nan)],
}


def fixture_cohort() -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = list(ENROLLED_DAYS_AGO)
    enrolled = {p: DATA_END - pd.Timedelta(days=d) for p, d in ENROLLED_DAYS_AGO.items()}
    patients = pd.DataFrame(
        {
            "patient_id": pd.Series(ids, dtype="str"),
            "enrolled_at": pd.Series([enrolled[p] for p in ids]).astype("datetime64[us, UTC]"),
            "sex": pd.Series([SEX[p] for p in ids], dtype="str"),
            "age": pd.array([30, 40, 22, 70, 19, 35, 50], dtype="Int64"),
            "human_support": pd.array([True, False, True, False, True, True, False], dtype="boolean"),
        }
    )
    rows = [(p, day, kind, value) for p, evs in EVENTS.items() for day, kind, value in evs]
    events = pd.DataFrame(
        {
            "patient_id": pd.Series([r[0] for r in rows], dtype="str"),
            "timestamp": pd.Series([enrolled[r[0]] + pd.Timedelta(days=r[1]) for r in rows]).astype(
                "datetime64[us, UTC]"
            ),
            "event_type": pd.Series([r[2] for r in rows], dtype="str"),
            "value": np.array([r[3] for r in rows], dtype=float),
        }
    )
    return patients, events


@pytest.fixture(scope="module")
def usage() -> pd.DataFrame:
    patients, events = fixture_cohort()
    return elements.patient_usage(patients, events, DATA_END, PROGRAM, LABELS, CONFIG).set_index("patient_id")


@pytest.fixture(scope="module")
def report() -> dict:
    patients, events = fixture_cohort()
    return build_report(patients, events, DATA_END, PROGRAM, LABELS, CONFIG, {"data_end": "test"})


@pytest.fixture(scope="module")
def small_cells_report() -> dict:
    patients, events = fixture_cohort()
    return build_report(patients, events, DATA_END, PROGRAM, LABELS, CONFIG.model_copy(update={"min_cell": 2}))


@pytest.fixture(scope="module")
def pages(report, small_cells_report) -> dict[str, str]:
    return {"full": render_html(report), "small_cells": render_html(small_cells_report)}


# --- numbers against hand-computed values ------------------------------------------------


def test_uptake_counts_own_engagement_and_time_to_first_use(report):
    up = report["uptake"]
    assert (up["any_use"]["count"], up["any_use"]["n"]) == (6, 7)  # zq4 only had a reminder
    assert up["any_use"]["share"] == round(6 / 7, 4)
    # within 5 days: zq6 first used on day 5.5; all 7 were observed >= 5 days
    assert (up["within_days"]["count"], up["within_days"]["n"]) == (5, 7)
    # first use (days): 0.25, 0.5, 0.5, 1.5, 3.5, 5.5 (zq6's pre-enrolment event ignored)
    first = up["days_to_first_use"]
    assert (first["n"], first["median"], first["q1"], first["q3"]) == (6, 1.0, 0.5, 3.0)
    assert report["cohort"]["excluded"] == {
        "patients_enrolled_after_data_end": 0,
        "events_after_data_end": 1,
        "events_before_enrolment": 1,
    }


def test_level_of_use_counts_the_window_among_patients_observed_through_it(report):
    lv = report["level_of_use"]
    # observed 28 days: zq1, zq2, zq4, zq6, zq7
    assert report["cohort"]["n_observed_window"] == 5
    assert (lv["sessions"]["median"], lv["sessions"]["q1"], lv["sessions"]["q3"]) == (3, 3, 4)  # 4, 4, 0, 3, 3
    assert (lv["minutes"]["median"], lv["minutes"]["q1"], lv["minutes"]["q3"]) == (40, 35, 75)  # 75, 35, 0, 40, 90
    assert (lv["modules"]["median"], lv["modules"]["q1"], lv["modules"]["q3"]) == (1, 0, 2)  # 2 (distinct), 1, 0, 0, 2
    assert (lv["checkins"]["median"], lv["checkins"]["q1"], lv["checkins"]["q3"]) == (0, 0, 1)
    assert lv["histograms"]["sessions"]["counts"] == [1, 0, 0, 2, 2]


def test_weekly_active_share_leaves_out_patients_not_yet_observed_through_the_week(report):
    weekly = report["duration"]["weekly"]
    got = [(w["active"]["count"], w["active"]["n"]) for w in weekly]
    # week 2 drops zq5 (10 days), weeks 3-4 also zq3 (20 days); zq4 (never used) stays and is inactive
    assert got == [(6, 7), (5, 6), (2, 5), (1, 5)]
    assert (weekly[0]["dose_met"]["count"], weekly[0]["dose_met"]["n"]) == (2, 7)  # zq1 (3 sessions), zq7 (2)


def test_completion_is_reaching_the_core_modules_within_the_window(report):
    assert (report["completion"]["count"], report["completion"]["n"]) == (2, 5)  # zq1, zq7


def test_dropout_times_follow_the_label_definition(usage):
    got = usage[["dropout_day", "dropout_event", "dropout_assessable"]]
    assert got.loc["zq1"].tolist() == [10, True, True]
    assert got.loc["zq2"].tolist() == [46, False, True]
    assert got.loc["zq3"].tolist() == [13, True, True]  # explicit discontinuation on day 12
    assert got.loc["zq6"].tolist() == [21, True, True]
    assert got.loc["zq7"].tolist() == [10, True, True]
    assert not usage.loc["zq4", "dropout_assessable"]  # never used
    assert not usage.loc["zq5", "dropout_assessable"]  # enrolled too recently


@pytest.mark.parametrize(
    ("definition", "expected"),
    [("inactivity", [6, False]), ("discontinuation", [13, True])],  # 6 = floor(20 - 14)
)
def test_dropout_definition_is_a_parameter(definition, expected):
    patients, events = fixture_cohort()
    labels = LabelConfig(definition=definition)
    usage = elements.patient_usage(patients, events, DATA_END, PROGRAM, labels, CONFIG).set_index("patient_id")
    assert usage.loc["zq3", ["dropout_day", "dropout_event"]].tolist() == expected
    if definition == "discontinuation":
        assert usage.loc["zq1", ["dropout_day", "dropout_event"]].tolist() == [60, False]


def test_kaplan_meier_of_the_fixture(report):
    z = NormalDist().inv_cdf(0.975)
    # assessed: events at 10, 10, 13, 21; censored at 46. S(10) = 3/5, S(13) = 3/5 * 2/3, S(21) = 0.4 * 1/2
    at = {p["day"]: p for p in report["duration"]["dropout"]["at_days"]}
    assert at[7]["survival"] == 1.0
    assert at[14]["survival"] == 0.4
    assert at[28]["survival"] == 0.2
    assert (at[7]["n_at_risk"], at[14]["n_at_risk"], at[28]["n_at_risk"]) == (5, 2, 1)
    curve = {p["day"]: p for p in report["duration"]["dropout"]["curve"]}
    se = math.sqrt(2 / (5 * 3)) / abs(math.log(0.6))  # Greenwood on the log-log scale
    assert curve[10]["lower"] == round(0.6 ** math.exp(z * se), 4)
    assert curve[10]["upper"] == round(0.6 ** math.exp(-z * se), 4)
    assert report["duration"]["dropout"]["median_days"]["median"] == 13
    assert report["duration"]["dropout"]["events"]["count"] == 4


def test_kaplan_meier_matches_the_textbook_6mp_example():
    # Freireich et al. 6-MP arm (Kleinbaum & Klein, Survival Analysis): + marks censoring.
    times = [6, 6, 6, 7, 10, 13, 16, 22, 23, 6, 9, 10, 11, 17, 19, 20, 25, 32, 32, 34, 35]
    event = [True] * 9 + [False] * 12
    km = kaplan_meier(np.array(times), np.array(event))
    expected = {6: 0.857, 7: 0.807, 10: 0.753, 13: 0.690, 16: 0.627, 22: 0.538, 23: 0.448}
    for t, s in expected.items():
        assert survival_at(km, t)["survival"] == pytest.approx(s, abs=5e-4)
    assert survival_at(km, 6)["n_at_risk"] == 21
    assert median_survival(km)["median"] == 23
    assert median_survival(km)["upper"] is None  # upper band never reaches 0.5


# --- subgroups and suppression -------------------------------------------------------------


def test_complementary_suppression_hides_a_second_cell():
    sizes = np.array([50, 3, 40, 12])
    mask = suppress_sizes(sizes, 10)
    # 3 alone would be recoverable from the total: the next smallest (12) is hidden with it
    assert mask.tolist() == [False, True, False, True]
    assert not complementary(sizes, np.zeros(4, dtype=bool), 10).any()
    # counts 2 of 50 is a small numerator; 38 of 40 leaves a small rest: both hidden, with partners
    shares = suppress_shares(np.array([50, 40, 60]), np.array([2, 38, 30]), np.zeros(3, dtype=bool), 10)
    assert shares.tolist() == [True, True, True]


def test_subgroup_breakdown_suppresses_small_groups(report, small_cells_report, pages):
    small = small_cells_report
    sex = next(g for g in small["subgroups"] if g["variable"] == "sex")
    sizes = {lv["level"]: lv["n_enrolled"] for lv in sex["levels"]}
    # "other" has 1 patient; "male" (2) is hidden too so 7 - 4 does not give it away
    assert sizes == {"female": 4, "male": None, "other": None}
    other = next(lv for lv in sex["levels"] if lv["level"] == "other")
    assert other["uptake"]["any_use"]["share"] is None and other["uptake"]["any_use"]["suppressed"]
    assert "suppressed" in pages["small_cells"]
    # with no suppression the sizes are all shown and add up to the cohort
    full = next(g for g in report["subgroups"] if g["variable"] == "sex")
    assert sum(lv["n_enrolled"] for lv in full["levels"]) == report["cohort"]["n_enrolled"] == 7


def test_subgroup_frame_bands_ages_and_names_missing_values():
    patients, _ = fixture_cohort()
    patients = patients.assign(age=pd.array([30, None, 22, 70, 17, 35, 50], dtype="Int64"))
    frame = subgroup_frame(patients, ReportConfig().subgroups, ReportConfig().age_bands, NOT_RECORDED).set_index("patient_id")
    assert frame.loc[["zq1", "zq2", "zq4", "zq5"], "age_band"].tolist() == ["25-34", "not recorded", "65+", "<18"]
    assert frame.loc["zq1", "human_support"] == "yes"
    assert "program" not in frame.columns  # not in the data: listed as not provided


# --- the HTML page -------------------------------------------------------------------------


class PageParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.headings: list[str] = []
        self.images: list[str] = []
        self.text: list[str] = []
        self._in = None

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "style", "title"):
            self._in = tag
        if tag == "img":
            self.images.append(dict(attrs)["src"])

    def handle_endtag(self, tag):
        if tag == self._in:
            self._in = None

    def handle_data(self, data):
        if self._in == "h2":
            self.headings.append(data.strip())
        if self._in != "style":
            self.text.append(data)


def test_html_has_every_section_embedded_figures_and_no_external_assets(report, pages):
    html = pages["full"]
    page = PageParser()
    page.feed(html)
    assert page.headings == [title for _, title in SECTIONS]
    # per subgroup (sex, age band, human support): uptake and completion charts, a weekly and a Kaplan-Meier
    # panel; overall: four histograms, the weekly figure and the Kaplan-Meier curve
    assert [g["variable"] for g in report["subgroups"]] == ["sex", "age_band", "human_support"]
    assert len(page.images) == 3 * 4 + 4 + 2
    assert all(src.startswith("data:image/png;base64,") and len(src) > 1000 for src in page.images)
    assert not re.search(r"https?://", html)
    assert "<script" not in html and "<link" not in html
    assert page.headings[0] == "Key findings"  # the findings come first, the methods last
    assert page.headings[-1] == "Definitions and methods"


def test_text_from_the_data_is_escaped_not_run(report):
    odd = json.loads(json.dumps(report))
    odd["title"] = "Report <script>alert(1)</script>"
    odd["sources"]["program"] = 'program.json "A & B"'
    html = render_html(odd)
    assert "<script" not in html
    assert "Report &lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "program.json &#34;A &amp; B&#34;" in html
    page = PageParser()
    page.feed(html)
    assert 'program.json "A & B"' in " ".join(page.text)


def _json_number_forms(report: dict) -> set[str]:
    forms: set[str] = set()

    def walk(x):
        if isinstance(x, bool) or x is None:
            return
        if isinstance(x, (int, float)):
            v = float(x)
            forms.update({f"{v:.1f}", f"{100 * v:.1f}", f"{100 * v:g}", f"{v:g}"})
            if v.is_integer():
                forms.update({str(int(v)), f"{int(v):,}"})
        elif isinstance(x, str):
            forms.update(re.findall(r"\d+(?:\.\d+)?", x))
        elif isinstance(x, dict):
            for k, v in x.items():
                walk(k)
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)

    walk(report)
    return forms


def test_every_number_in_the_html_is_in_the_json(report, small_cells_report, pages):
    for rep, html in ((report, pages["full"]), (small_cells_report, pages["small_cells"])):
        page = PageParser()
        page.feed(html)
        numbers = re.findall(r"\d[\d,]*(?:\.\d+)?", " ".join(page.text))
        forms = _json_number_forms(json.loads(json.dumps(rep)))
        missing = sorted({n for n in numbers if n not in forms and n.replace(",", "") not in forms})
        assert not missing, missing


def test_report_holds_no_patient_identifiers(report, pages):
    page = PageParser()
    page.feed(pages["full"])
    text = json.dumps(report) + " ".join(page.text)
    assert not any(pid in text for pid in ENROLLED_DAYS_AGO)


# --- the command line ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sim_dir(tmp_path_factory):
    from features.io import write_table
    from simulation import simulate

    folder = tmp_path_factory.mktemp("sim")
    cohort = simulate(replace(SimulationConfig(), n_patients=600, days=90, seed=7))
    write_table(cohort.patients, folder, "patients")
    write_table(cohort.events, folder, "events")
    (folder / "meta.json").write_text(json.dumps({"data_end": cohort.data_end.isoformat(), "seed": 7}))
    (folder / "program.json").write_text(json.dumps({"core_modules": 6}))
    return folder


def test_cli_writes_both_files_for_a_simulated_cohort(sim_dir, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--data", str(sim_dir), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]
    rep = json.loads((out / "report.json").read_text())
    assert rep["cohort"]["n_enrolled"] == 600
    assert rep["recommended_use"]["core_modules"] == 6  # read from program.json
    assert rep["sources"]["data_end"] == "from meta.json"
    assert 0 < rep["uptake"]["any_use"]["share"] < 1
    page = PageParser()
    page.feed((out / "report.html").read_text())
    assert page.headings == [title for _, title in SECTIONS]
    assert str(out / "report.html") in capsys.readouterr().out


def test_cli_refuses_bad_data_and_leaves_an_existing_report(sim_dir, tmp_path, capsys):
    out = tmp_path / "report"
    out.mkdir()
    (out / "report.html").write_text("earlier report")
    (out / "report.json").write_text("{}")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "patients.csv").write_text("patient_id,enrolled_at,age\nA,2026-01-01T00:00:00Z,abc\n")
    (bad / "events.csv").write_text("patient_id,timestamp,event_type,value\nA,2026-01-02T00:00:00Z,session,5\n")
    assert main(["report", "--data", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "age" in err and "abc" not in err
    bad_meta = tmp_path / "bad_meta"
    bad_meta.mkdir()
    for name in ("patients.parquet", "events.parquet"):
        (bad_meta / name).write_bytes((sim_dir / name).read_bytes())
    (bad_meta / "meta.json").write_text('{"data_end": "not a time"}')
    assert main(["report", "--data", str(bad_meta), "--out", str(out)]) == 2
    assert "meta.json" in capsys.readouterr().err
    assert (out / "report.html").read_text() == "earlier report"
    assert (out / "report.json").read_text() == "{}"
    assert sorted(p.name for p in out.iterdir()) == ["report.html", "report.json"]  # no temp files left


def test_a_cohort_below_the_minimum_shows_only_suppressed_cells():
    patients, events = fixture_cohort()
    rep = build_report(patients, events, DATA_END, PROGRAM, LABELS, CONFIG.model_copy(update={"min_cell": 100}))
    assert rep["cohort"]["n_enrolled"] is None
    assert rep["uptake"]["any_use"]["share"] is None
    assert rep["duration"]["dropout"]["curve"] == []
    assert all(w["active"]["count"] is None for w in rep["duration"]["weekly"])
    assert rep["level_of_use"]["histograms"]["sessions"]["suppressed"]
    json.dumps(rep, allow_nan=False)  # no NaN sneaks into the JSON


# --- key findings, dates and file modes -------------------------------------------------------


def _wilson(count: int, n: int) -> str:
    """Wilson score interval written out by hand, formatted as the page writes a share interval."""
    z = NormalDist().inv_cdf(0.975)
    p = count / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return f"{100 * round(centre - half, 4):.1f}–{100 * round(centre + half, 4):.1f}%"


def test_key_findings_state_each_element_with_its_figure_and_interval(report):
    found = {f.key: f.text for f in key_findings(report)}
    assert list(found) == ["recommended-use", "uptake", "level-of-use", "weekly-use", "time-to-dropout", "completion"]
    assert found["recommended-use"] == ("2 sessions a week Patients are asked for 2 sessions a week and 1 module a "
                                        "week; completing 2 core modules within 28 days counts as completion.")
    # 6 of 7 used the program; 5 of 7 within 5 days
    assert found["uptake"] == (f"85.7% (95% CI {_wilson(6, 7)}) used the program at least once: 6 of 7 enrolled "
                               f"patients. Within 5 days of enrolment: 71.4% ({_wilson(5, 7)}) of the 7 observed "
                               "that long.")
    # sessions 4, 4, 0, 3, 3 and modules 2, 1, 0, 0, 2 over the 28-day window (see the level-of-use test)
    assert found["level-of-use"] == ("3 sessions (IQR 3–4) per patient (median) in the first 28 days, among the 5 "
                                     "observed that long. Modules completed: median 1 (IQR 0–2).")
    # week 4: only zq2 of the 5 observed through it; week 1: 6 of 7
    assert found["weekly-use"] == (f"20.0% (95% CI {_wilson(1, 5)}) were still active in week 4: 1 of the 5 "
                                   f"observed through that week. In week 1: 85.7% ({_wilson(6, 7)}).")
    # events at 10, 10, 13, 21, censored at 46: S(13) = 0.4 is the first <= 0.5. The lower band is 0.126 on day 10
    # (first <= 0.5); the upper band stays above 0.5 (0.589 after day 21), so the upper limit is not reached.
    z = NormalDist().inv_cdf(0.975)
    se = math.sqrt(2 / (5 * 3) + 1 / (3 * 2)) / abs(math.log(0.4))
    lo, hi = 0.4 ** math.exp(z * se), 0.4 ** math.exp(-z * se)
    assert found["time-to-dropout"] == ("13 days (95% CI 10–not reached) median time to dropout (Kaplan-Meier) among "
                                        "the 5 users who could be assessed. Not yet dropped out on day 14: 40.0% "
                                        f"({100 * round(lo, 4):.1f}–{100 * round(hi, 4):.1f}%).")
    # zq1 and zq7 completed 2 modules, of the 5 observed for 28 days
    assert found["completion"] == (f"40.0% (95% CI {_wilson(2, 5)}) completed 2 or more core modules within 28 "
                                   "days: 2 of the 5 observed that long.")


def test_key_findings_of_a_cohort_below_the_minimum_say_suppressed():
    patients, events = fixture_cohort()
    rep = build_report(patients, events, DATA_END, PROGRAM, LABELS, CONFIG.model_copy(update={"min_cell": 100}))
    found = key_findings(rep)
    assert found[0].figure == "2 sessions a week"  # the recommended use is not about patients
    for f in found[1:]:
        assert f.text == "suppressed Too few patients to show (a group or count under 100).", f.key


def test_findings_come_first_on_the_page_and_dates_are_in_words(report):
    rep = {**report, "written_at": "2026-12-02T07:05:00+00:00"}
    page = PageParser()
    page.feed(render_html(rep))
    text = re.sub(r"\s+([.,])", r"\1", re.sub(r"\s+", " ", " ".join(page.text)))
    assert text.index("85.7%") < text.index("Uptake by sex") < text.index("Table 1. Cohort")
    assert "observed to 1 March 2026. Written 2 December 2026." in text
    assert not re.search(r"\d{4}-\d{2}-\d{2}", text)  # no raw timestamps in what a reader sees
    assert date_words("2025-12-30T00:00:00+00:00") == "30 December 2025"
    assert month_span_words("2025-09", "2025-11") == "September to November 2025"
    assert month_span_words("2025-12", "2026-01") == "December 2025 to January 2026"


def test_subgroup_charts_mark_suppressed_levels_and_never_draw_them(report, small_cells_report):
    # min_cell 1: every level shown with its interval; uptake by sex: female 3 of 4 (zq4 never used), male 2 of 2
    alt = {g["variable"]: g for g in html_module._subgroup_charts(report)}["sex"]["charts"][0]["alt"]
    assert alt == (f"Uptake by sex, 95% CI. female: 75.0% ({_wilson(3, 4)}); male: 100.0% ({_wilson(2, 2)}); "
                   f"other: 100.0% ({_wilson(1, 1)}).")
    # min_cell 2: "other" (1 patient) and "male" (2, hidden with it) are named as suppressed, not drawn
    alt = {g["variable"]: g for g in html_module._subgroup_charts(small_cells_report)}["sex"]["charts"][0]["alt"]
    assert "male: suppressed" in alt and "other: suppressed" in alt


def test_report_files_are_world_readable_whatever_the_umask(tmp_path):
    old = os.umask(0o077)
    try:
        paths = write_files(tmp_path / "out", {"report.html": "<p>x</p>", "report.json": "{}"})
    finally:
        os.umask(old)
    assert {name: stat.S_IMODE(p.stat().st_mode) for name, p in paths.items()} == {
        "report.html": 0o644, "report.json": 0o644}


def test_without_chromium_the_pdf_is_skipped_with_a_reason_and_an_earlier_pdf_is_kept(tmp_path):
    html = tmp_path / "report.html"
    html.write_text("<p>report</p>")
    (tmp_path / "report.pdf").write_bytes(b"%PDF- earlier")
    reason = write_pdf_or_reason(html, chromium=tmp_path / "no-chromium")
    assert reason.startswith("lapse report: no PDF written:") and "no-chromium is not installed" in reason
    with pytest.raises(PdfUnavailable):
        write_pdf(html, chromium=tmp_path / "no-chromium")
    assert (tmp_path / "report.pdf").read_bytes() == b"%PDF- earlier"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html", "report.pdf"]


def test_cli_reports_a_program_with_its_own_declared_vocabulary(tmp_path, capsys):
    """A folder whose events are the program's own types (declared in lapse.toml) loads, and those types
    count as use: a patient with only `lesson_viewed` events used the program."""
    folder = tmp_path / "program"
    folder.mkdir()
    ids = [f"p{i:02d}" for i in range(30)]
    (folder / "patients.csv").write_text("patient_id,enrolled_at\n" + "".join(
        f"{p},2026-01-01T00:00:00Z\n" for p in ids))
    users = ids[:18]  # 18 of 30 used the program, only through the program's own types
    rows = [f"{p},2026-01-0{1 + k}T10:00:00Z,lesson_viewed,\n" for p in users for k in range(3)]
    rows += [f"{p},2026-01-02T09:00:00Z,reminder_sent,\n" for p in ids]  # not the patient's own use
    (folder / "events.csv").write_text("patient_id,timestamp,event_type,value\n" + "".join(rows))
    (folder / "meta.json").write_text(json.dumps({"data_end": "2026-03-01T00:00:00+00:00"}))
    (folder / "lapse.toml").write_text('[events.types.lesson_viewed]\nwords = "lessons viewed"\n')
    out = tmp_path / "report"
    assert main(["report", "--data", str(folder), "--out", str(out), "--min-cell", "1"]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["uptake"]["any_use"]["count"] == 18 and rep["uptake"]["any_use"]["n"] == 30
    # Without the declaration the same folder is refused at the door, naming the unknown type.
    (folder / "lapse.toml").unlink()
    assert main(["report", "--data", str(folder), "--out", str(tmp_path / "other")]) == 2
    assert "lesson_viewed" in capsys.readouterr().err
