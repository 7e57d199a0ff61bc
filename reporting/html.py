"""The engagement report as one self-contained HTML page: a jinja2 template, inline CSS, figures as embedded PNG.

The page's words and layout are in templates/report.html.j2 (autoescaped); this module formats
the cells and draws the figures.
"""

from __future__ import annotations

from functools import cache

from jinja2 import Environment, PackageLoader, StrictUndefined
from markupsafe import Markup

from reporting import figures
from reporting.elements import LEVEL_MEASURES
from reporting.findings import key_findings
from reporting.formats import (ci_label, date_words, interval_span, month_span_words, number, percent,
                               share_interval)

TEMPLATE = "report.html.j2"

SECTIONS: tuple[tuple[str, str], ...] = (
    ("findings", "Key findings"),
    ("subgroup-charts", "Uptake and completion by subgroup"),
    ("recommended-use", "Recommended use"),
    ("cohort", "Cohort"),
    ("uptake", "Uptake"),
    ("level-of-use", "Level of use"),
    ("duration-of-use", "Duration of use"),
    ("completion", "Completion"),
    ("subgroups", "By subgroup: tables"),
    ("methods", "Definitions and methods"),
)

SUPPRESSED = Markup('<span class="supp">suppressed</span>')

__all__ = ["SECTIONS", "Formatter", "number", "render_html"]


class Formatter:
    """Formats report cells as safe HTML, showing hidden sizes and statistics as 'suppressed'.

    Intervals are wrapped in an unbreakable span (class "ci"), so a cell never wraps inside one."""

    def __init__(self, min_cell: int):
        self.min_cell = min_cell

    def n(self, value: int | None) -> Markup:
        return SUPPRESSED if value is None else Markup.escape(number(value))

    def share(self, s: dict, with_count: bool = True) -> Markup:
        if s["share"] is None:
            return SUPPRESSED if s["suppressed"] or s["n"] is None else Markup("—")
        pct = percent(s["share"])
        return Markup("{} ({})").format(number(s["count"]), pct) if with_count else Markup.escape(pct)

    def share_ci(self, s: dict) -> Markup:
        """A share with its confidence interval: '76.3% (74.8–77.8%)'."""
        if s["share"] is None:
            return self.share(s)
        return Markup("{} {}").format(percent(s["share"]), interval_span(f"({share_interval(s['lower'], s['upper'])})"))

    def summary(self, s: dict) -> Markup:
        if s["suppressed"]:
            return SUPPRESSED
        if s["median"] is None:
            return Markup("—")
        return Markup("{} {}").format(number(s["median"]), interval_span(f"({number(s['q1'])}–{number(s['q3'])})"))

    def survival(self, p: dict) -> Markup:
        if p["survival"] is None:
            return SUPPRESSED
        limits = interval_span(f"({share_interval(p['lower'], p['upper'])})")
        return Markup("{} {}").format(percent(p["survival"]), limits)

    def median_days(self, m: dict, curve_end: int | None) -> Markup:
        if curve_end is None:
            return SUPPRESSED
        if m["median"] is None:
            return Markup("not reached by day {}").format(curve_end)
        lo = number(m["lower"]) if m["lower"] is not None else "—"
        hi = number(m["upper"]) if m["upper"] is not None else "not reached"
        return Markup("{} {}").format(number(m["median"]), interval_span(f"({lo}–{hi})"))


@cache
def _environment() -> Environment:
    # Built on first use, not at import; autoescape on: every value from the report is escaped.
    return Environment(loader=PackageLoader("reporting", "templates"), autoescape=True, undefined=StrictUndefined,
                       trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.do"])


def _overall(r: dict) -> dict:
    """The all-patients row of the subgroup tables, in the shape of a subgroup level."""
    return {
        "level": "All patients",
        "n_enrolled": r["cohort"]["n_enrolled"],
        "uptake": r["uptake"],
        "n_observed_window": r["cohort"]["n_observed_window"],
        "level_of_use": r["level_of_use"],
        "completion": r["completion"],
        "weekly": r["duration"]["weekly"],
        "dropout": r["duration"]["dropout"],
    }


def _figures(r: dict) -> dict:
    s = r["settings"]
    out = {
        "level_of_use": [(figures.level_of_use_figure(r["level_of_use"]["histograms"][name], title),
                          f"Distribution of {title.lower()} per patient")
                         for name, title in LEVEL_MEASURES.items()],
        "weekly": figures.weekly_figure(r["duration"]["weekly"]),
        "km": figures.km_figure(r["duration"]["dropout"], s["confidence"]),
    }
    if r["subgroups"]:
        labels = [g["label"] for g in r["subgroups"]]
        out["subgroup_weekly"] = list(zip(figures.subgroup_weekly_figures(r["subgroups"]),
                                          [f"Weekly active share by {label}" for label in labels]))
        out["subgroup_km"] = list(zip(figures.subgroup_km_figures(r["subgroups"]),
                                      [f"Kaplan-Meier curves of time to dropout by {label}" for label in labels]))
    return out


def _share_alt(title: str, levels: list[tuple[str, dict]], confidence: float) -> str:
    """The text a screen reader gets for a dot-and-interval chart: every level's value, or 'suppressed'."""
    parts = [f"{label}: suppressed" if sh["share"] is None
             else f"{label}: {percent(sh['share'])} ({share_interval(sh['lower'], sh['upper'])})"
             for label, sh in levels]
    return f"{title}, {ci_label(confidence)}. " + "; ".join(parts) + "."


def _subgroup_charts(r: dict) -> list[dict]:
    """Per subgroup attribute: the uptake and the completion dot-and-interval charts, with their alt text."""
    s = r["settings"]
    charts = []
    for g in r["subgroups"]:
        pairs = []
        for title, pick, overall, axis in (
            ("Uptake", lambda lv: lv["uptake"]["any_use"], r["uptake"]["any_use"], "% who used the program"),
            ("Completion", lambda lv: lv["completion"], r["completion"],
             f"% who completed {number(r['recommended_use']['core_modules'])}+ core modules"),
        ):
            levels = [(lv["level"], pick(lv)) for lv in g["levels"]]
            caption = f"{title} by {g['label'][0].lower()}{g['label'][1:]}"
            pairs.append({
                "caption": caption,
                "png": figures.subgroup_share_figure(levels, overall, f"{axis} ({ci_label(s['confidence'])})"),
                "alt": _share_alt(caption, levels, s["confidence"]),
            })
        charts.append({"label": g["label"], "variable": g["variable"], "charts": pairs})
    return charts


def render_html(report: dict) -> str:
    """Render the report dict as a self-contained HTML page."""
    s = report["settings"]
    f = Formatter(s["min_cell"])
    weeks = [w for w in s["subgroup_weeks"] if w <= s["weeks"]]
    day = s["subgroup_survival_day"]

    def uptake_cells(level: dict) -> list:
        return [level["level"], f.n(level["n_enrolled"]), f.share_ci(level["uptake"]["any_use"]),
                f.summary(level["uptake"]["days_to_first_use"]), f.share_ci(level["completion"])]

    def level_cells(level: dict) -> list:
        return [level["level"], f.n(level["n_observed_window"]),
                *(f.summary(level["level_of_use"][name]) for name in LEVEL_MEASURES)]

    def weekly_cells(level: dict) -> list:
        return [level["level"], *(Markup("{} ({})").format(f.share(level["weekly"][w - 1]["active"], with_count=False),
                                                           f.n(level["weekly"][w - 1]["active"]["n"])) for w in weeks)]

    def dropout_cells(level: dict) -> list:
        dropout = level["dropout"]
        at = next((p for p in dropout["at_days"] if p["day"] == day), None)
        return [level["level"], f.n(dropout["n"]), f.median_days(dropout["median_days"], dropout["curve_end_day"]),
                f.survival(at) if at is not None else "—"]

    return _environment().get_template(TEMPLATE).render(
        r=report, f=f, number=number, figs=_figures(report), sections=dict(SECTIONS), level_measures=LEVEL_MEASURES,
        overall=_overall(report), subgroup_weeks=weeks, findings=key_findings(report),
        subgroup_charts=_subgroup_charts(report), date_words=date_words, month_span_words=month_span_words,
        ci_label=ci_label, cells={"uptake": uptake_cells, "level": level_cells, "weekly": weekly_cells,
                                  "dropout": dropout_cells},
    )
