"""The engagement report as one self-contained HTML page: inline CSS, figures as embedded PNG."""

from __future__ import annotations

from html import escape

from reporting import figures
from reporting.elements import LEVEL_MEASURES

SECTIONS: tuple[tuple[str, str], ...] = (
    ("recommended-use", "Recommended use"),
    ("cohort", "Cohort"),
    ("uptake", "Uptake"),
    ("level-of-use", "Level of use"),
    ("duration-of-use", "Duration of use"),
    ("completion", "Completion"),
    ("subgroups", "By subgroup"),
    ("methods", "Definitions and methods"),
)

CSS = """
body { font-family: Georgia, 'Times New Roman', serif; color: #222; max-width: 1100px; margin: 2em auto;
       padding: 0 1.5em; line-height: 1.45; }
h1 { font-size: 1.7em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #999; padding-bottom: 0.15em; margin-top: 1.8em; }
p.meta { color: #555; margin-top: 0; }
.lead { background: #f3f6f9; border-left: 4px solid #1f5f8b; padding: 0.6em 1em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; font-family: Helvetica, Arial, sans-serif; }
caption { text-align: left; font-weight: bold; padding-bottom: 0.3em; font-family: Georgia, serif; }
th, td { padding: 0.25em 0.7em; text-align: right; vertical-align: top; }
th:first-child, td:first-child { text-align: left; }
thead th { border-top: 2px solid #222; border-bottom: 1px solid #222; font-weight: bold; }
tbody tr:last-child td { border-bottom: 2px solid #222; }
tr.variable td { font-weight: bold; padding-top: 0.6em; }
tr.level td:first-child { padding-left: 1.6em; }
tr.total td { font-style: italic; }
.supp { color: #888; font-style: italic; }
.note { font-size: 0.85em; color: #555; }
img { max-width: 100%; display: block; margin: 0.6em 0; }
ul.defs li { margin-bottom: 0.35em; }
"""


def number(value: float | int | None) -> str:
    """A count or value as shown: whole numbers without decimals, others to one decimal."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.1f}"


class Formatter:
    """Formats report cells, showing hidden sizes and statistics as 'suppressed'."""

    def __init__(self, min_cell: int):
        self.min_cell = min_cell

    def hidden(self) -> str:
        return '<span class="supp">suppressed</span>'

    def n(self, value: int | None) -> str:
        return self.hidden() if value is None else number(value)

    def share(self, s: dict, with_count: bool = True) -> str:
        if s["share"] is None:
            return self.hidden() if s["suppressed"] or s["n"] is None else "—"
        pct = f"{100 * s['share']:.1f}%"
        return f"{number(s['count'])} ({pct})" if with_count else pct

    def summary(self, s: dict) -> str:
        if s["suppressed"]:
            return self.hidden()
        if s["median"] is None:
            return "—"
        return f"{number(s['median'])} ({number(s['q1'])}–{number(s['q3'])})"

    def survival(self, p: dict) -> str:
        if p["survival"] is None:
            return self.hidden()
        return f"{100 * p['survival']:.1f}% ({100 * p['lower']:.1f}–{100 * p['upper']:.1f})"

    def median_days(self, m: dict, curve_end: int | None) -> str:
        if curve_end is None:
            return self.hidden()
        if m["median"] is None:
            return f"not reached by day {curve_end}"
        lo = number(m["lower"]) if m["lower"] is not None else "—"
        hi = number(m["upper"]) if m["upper"] is not None else "not reached"
        return f"{number(m['median'])} ({lo}–{hi})"


def render_html(report: dict) -> str:
    """Render the report dict as a self-contained HTML page."""
    f = Formatter(report["settings"]["min_cell"])
    body = [
        f"<h1>{escape(report['title'])}</h1>",
        f'<p class="meta">Observation ends {escape(report["data_end"])}. '
        f"Aggregates only: no patient-level values. Groups and counts under {report['settings']['min_cell']} "
        "patients are suppressed.</p>",
        _recommended_use(report),
        _cohort(report, f),
        _uptake(report, f),
        _level_of_use(report, f),
        _duration(report, f),
        _completion(report, f),
        _subgroups(report, f),
        _methods(report),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(report['title'])}</title>\n<style>{CSS}</style>\n</head>\n<body>\n"
        + "\n".join(body)
        + "\n</body>\n</html>\n"
    )


def _section(key: str, *parts: str) -> str:
    title = dict(SECTIONS)[key]
    return f'<section id="{key}">\n<h2>{escape(title)}</h2>\n' + "\n".join(parts) + "\n</section>"


def _table(caption: str, header: list[str], rows: list[list[str]], row_classes: list[str] | None = None) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    classes = row_classes or [""] * len(rows)
    body = "".join(
        f'<tr class="{c}">' + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>\n" for row, c in zip(rows, classes)
    )
    return (
        f"<table>\n<caption>{escape(caption)}</caption>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{body}</tbody>\n</table>"
    )


def _img(png: str, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{png}">'


def _per_week(value: float, what: str) -> str:
    return f"{number(value)} {what}{'' if value == 1 else 's'} a week"


def _recommended_use(r: dict) -> str:
    rec = r["recommended_use"]
    source = r["sources"].get("program", "program defaults")
    return _section(
        "recommended-use",
        f'<p class="lead">Patients are asked to aim for <strong>{_per_week(rec["sessions_per_week"], "session")}'
        f'</strong> and <strong>{_per_week(rec["modules_per_week"], "module")}</strong>; the recommended dose, used '
        f'for completion, is <strong>{number(rec["core_modules"])} core modules</strong>. '
        f"(Source: {escape(source)}.)</p>",
    )


def _cohort(r: dict, f: Formatter) -> str:
    c = r["cohort"]
    s = r["settings"]
    months = c["enrolment_months"]
    rows = [
        ["Enrolled by the end of observation", f.n(c["n_enrolled"])],
        ["Enrolment period (months)", escape(f"{months['first']} to {months['last']}") if months["first"] else "—"],
        ["Follow-up, days, median (IQR)", f.summary(c["follow_up_days"])],
        [f"Observed for the whole {s['weeks']}-week window", f.n(c["n_observed_window"])],
    ]
    ex = c["excluded"]
    note = (
        f'<p class="note">Left out: {number(ex["patients_enrolled_after_data_end"])} patients enrolled after the '
        "end of "
        f'observation, {number(ex["events_after_data_end"])} events after it and '
        f'{number(ex["events_before_enrolment"])} events timed before their patient\'s enrolment.</p>'
    )
    return _section("cohort", _table("Table 1. Cohort", ["Characteristic", "Value"], rows), note)


def _uptake(r: dict, f: Formatter) -> str:
    u = r["uptake"]
    s = r["settings"]
    rows = [
        ["Any own engagement by the end of observation, n (%)", f.n(u["any_use"]["n"]), f.share(u["any_use"])],
        [
            f"Any own engagement within {s['uptake_days']} days of enrolment, n (%)",
            f.n(u["within_days"]["n"]),
            f.share(u["within_days"]),
        ],
        [
            "Days from enrolment to first use, median (IQR)",
            f.n(u["days_to_first_use"]["n"]),
            f.summary(u["days_to_first_use"]),
        ],
    ]
    note = (
        f'<p class="note">The first row counts all enrolled patients; the second only those observed for at least '
        f"{s['uptake_days']} days; time to first use is among patients who used the program.</p>"
    )
    return _section("uptake", _table("Table 2. Uptake", ["Measure", "n", "Value"], rows), note)


def _level_of_use(r: dict, f: Formatter) -> str:
    lv = r["level_of_use"]
    s = r["settings"]
    rows = [[f"{label} per patient", f.n(lv[name]["n"]), f.summary(lv[name])] for name, label in LEVEL_MEASURES.items()]
    note = (
        f'<p class="note">Counted over the first {s["window_days"]} days after enrolment, among patients observed '
        "that long (patients who never used the program count as 0). Histogram bars with fewer than "
        f"{s['min_cell']} patients are not drawn.</p>"
    )
    fig = _img(figures.level_of_use_figure(lv["histograms"]), "Distributions of level of use per patient")
    return _section("level-of-use", _table("Table 3. Level of use", ["Measure", "n", "Median (IQR)"], rows), note, fig)


def _duration(r: dict, f: Formatter) -> str:
    d = r["duration"]
    s = r["settings"]
    rows = [
        [f"Week {w['week']}", f.n(w["active"]["n"]), f.share(w["active"]), f.share(w["dose_met"])] for w in d["weekly"]
    ]
    weekly = _table(
        f"Table 4. Weekly use, weeks 1-{s['weeks']}",
        ["Week", "Observed through the week, n", "Any own engagement, n (%)", "Met recommended sessions, n (%)"],
        rows,
    )
    weekly_note = (
        '<p class="note">Week k covers days 7(k-1) to 7k after enrolment. Each week\'s denominator is the patients '
        "observed through the end of that week: patients enrolled too recently are left out of that week rather "
        "than counted as inactive; patients who discontinued or never started stay in and count as inactive.</p>"
    )
    km = d["dropout"]
    ci = f"{100 * s['confidence']:g}%"
    km_rows = [
        [f"Day {p['day']}", f.n(p["n_at_risk"]), f.survival(p)] for p in km["at_days"] if p["day"] in s["survival_days"]
    ]
    km_table = _table(
        f"Table 5. Still using after t days (Kaplan-Meier, {ci} CI)",
        ["Days since enrolment", "At risk, n", f"Not yet dropped out, % ({ci} CI)"],
        km_rows,
    )
    km_text = (
        f"<p>Among {f.n(km['n'])} patients who used the program and could be assessed, "
        f"{f.share(km['events'])} dropped out during follow-up; the others are censored. "
        f"Median time to dropout, days ({ci} CI): "
        f"<strong>{f.median_days(km['median_days'], km['curve_end_day'])}</strong>. "
        f"Users enrolled too recently to be assessed are not included ({f.n(km['n_not_assessable_users'])}). "
        f"The curve stops on day {number(km['curve_end_day'])}, the last day with at least {s['min_cell']} "
        "patients at risk.</p>"
        if km["curve"]
        else "<p>Too few patients to estimate time to dropout.</p>"
    )
    return _section(
        "duration-of-use",
        weekly,
        weekly_note,
        _img(figures.weekly_figure(d["weekly"]), "Weekly active share"),
        km_text,
        km_table,
        _img(figures.km_figure(km, s["confidence"]), "Kaplan-Meier curve of time to dropout"),
    )


def _completion(r: dict, f: Formatter) -> str:
    c = r["completion"]
    s = r["settings"]
    rec = r["recommended_use"]
    rows = [
        [
            f"Completed {number(rec['core_modules'])} or more modules within {s['window_days']} days, n (%)",
            f.n(c["n"]),
            f.share(c),
        ]
    ]
    note = f'<p class="note">Among patients observed for the whole {s["window_days"]}-day window.</p>'
    return _section("completion", _table("Table 6. Completion", ["Measure", "n", "Value"], rows), note)


def _subgroups(r: dict, f: Formatter) -> str:
    s = r["settings"]
    groups = r["subgroups"]
    overall = {
        "level": "All patients",
        "n_enrolled": r["cohort"]["n_enrolled"],
        "uptake": r["uptake"],
        "n_observed_window": r["cohort"]["n_observed_window"],
        "level_of_use": r["level_of_use"],
        "completion": r["completion"],
        "weekly": r["duration"]["weekly"],
        "dropout": r["duration"]["dropout"],
    }
    weeks = [w for w in s["subgroup_weeks"] if w <= s["weeks"]]
    day = s["subgroup_survival_day"]

    def use_row(level: dict) -> list[str]:
        return [
            escape(level["level"]),
            f.n(level["n_enrolled"]),
            f.share(level["uptake"]["any_use"], with_count=False),
            f.summary(level["uptake"]["days_to_first_use"]),
            f.n(level["n_observed_window"]),
            *(f.summary(level["level_of_use"][name]) for name in LEVEL_MEASURES),
            f.share(level["completion"], with_count=False),
        ]

    def duration_row(level: dict) -> list[str]:
        at = next((p for p in level["dropout"]["at_days"] if p["day"] == day), None)
        return [
            escape(level["level"]),
            *(_weekly_cell(f, level["weekly"][w - 1]["active"]) for w in weeks),
            f.n(level["dropout"]["n"]),
            f.median_days(level["dropout"]["median_days"], level["dropout"]["curve_end_day"]),
            f.survival(at) if at is not None else "—",
        ]

    def stacked(make_row, width: int) -> tuple[list[list[str]], list[str]]:
        rows, classes = [make_row(overall)], ["total"]
        for g in groups:
            rows.append([escape(g["label"])] + [""] * (width - 1))
            classes.append("variable")
            for level in g["levels"]:
                rows.append(make_row(level))
                classes.append("level")
        return rows, classes

    use_header = [
        "Subgroup",
        "Enrolled, n",
        "Uptake, %",
        "Days to first use, median (IQR)",
        f"Observed {s['weeks']} wk, n",
        *(f"{label}, median (IQR)" for label in LEVEL_MEASURES.values()),
        "Completion, %",
    ]
    rows, classes = stacked(use_row, len(use_header))
    use_table = _table("Table 7. Uptake, level of use and completion by subgroup", use_header, rows, classes)
    ci = f"{100 * s['confidence']:g}%"
    duration_header = [
        "Subgroup",
        *(f"Active week {w}, % (n observed)" for w in weeks),
        "Assessed for dropout, n",
        f"Median days to dropout ({ci} CI)",
        f"Not dropped out at day {day}, % ({ci} CI)",
    ]
    rows, classes = stacked(duration_row, len(duration_header))
    duration_table = _table("Table 8. Duration of use by subgroup", duration_header, rows, classes)
    missing = r["subgroups_not_provided"]
    note = (
        f'<p class="note">"Suppressed": a group of fewer than {s["min_cell"]} patients, a share whose count (or the '
        f"count of the rest of its group) is under {s['min_cell']}, and the cells hidden with them so that no hidden "
        "value can be worked out from the total or the other rows (see Definitions and methods). Level of use and "
        "completion count the first "
        f"{s['window_days']} days among patients observed that long.</p>"
        + (f'<p class="note">Not in the data, so not broken down: {escape(", ".join(missing))}.</p>' if missing else "")
    )
    parts = [use_table, duration_table, note]
    if groups:
        parts.append(_img(figures.subgroup_weekly_figure(groups), "Weekly active share by subgroup"))
        parts.append(_img(figures.subgroup_km_figure(groups), "Kaplan-Meier curves of time to dropout by subgroup"))
    return _section("subgroups", *parts)


def _weekly_cell(f: Formatter, active: dict) -> str:
    return f"{f.share(active, with_count=False)} ({f.n(active['n'])})"


def _methods(r: dict) -> str:
    s = r["settings"]
    h = s["inactivity_days"]
    definition = {
        "either": f"the earlier of (a) the day of last own engagement, when at least {h} days without own engagement "
        "followed it before the end of observation, and (b) an explicit discontinuation",
        "inactivity": f"the day of last own engagement, when at least {h} days without own engagement followed it "
        "before the end of observation",
        "discontinuation": "an explicit discontinuation event",
    }[s["dropout_definition"]]
    items = [
        "Own engagement: sessions, completed modules and exercises, mood check-ins, PHQ-9 and GAD-7 entries and "
        "messages to a coach. Reminders, coach messages and discontinuation records are not use.",
        "Days are counted from enrolment: day 0 is the first 24 hours. The end of observation is "
        f"{escape(r['data_end'])} ({escape(r['sources'].get('data_end', 'given'))}).",
        f"Dropout is {definition}. A patient whose last use was on day k drops out at day k + 1, so the curve gives "
        "the share still using t days after enrolment or later.",
        f"Censoring: patients without a dropout are censored at the last day from which {h} further days were "
        f"observed (follow-up minus {h} days), or at the end of follow-up when dropout means explicit "
        "discontinuation only. Patients who never used the program are counted under uptake, not in the curve; "
        "users enrolled too recently to reach that censoring day are not assessed.",
        f"Survival is the Kaplan-Meier estimate; confidence bands ({100 * s['confidence']:g}%) use Greenwood's "
        "variance on the log(-log) scale. The curve and the table stop when fewer than "
        f"{s['min_cell']} patients remain at risk.",
        f"Suppression: a group with 1 to {s['min_cell'] - 1} patients is suppressed with all its statistics; "
        "a share is "
        f"suppressed when its count, or the count of the rest of its group, is 1 to {s['min_cell'] - 1}. When "
        "suppression hides cells in a breakdown, further cells (smallest first) are hidden until at least two are "
        f"hidden and together they hold 0 or at least {s['min_cell']} patients (applied per column, to group sizes, "
        "counts and the rest of each group). Histogram bars under that size are not drawn. Minima and maxima are "
        "never shown.",
        "Age bands (years): lower edges " + escape(", ".join(str(a) for a in s["age_bands"])) + ".",
    ]
    return _section("methods", '<ul class="defs">' + "".join(f"<li>{i}</li>" for i in items) + "</ul>")
