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

TEMPLATE = "report.html.j2"

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

SUPPRESSED = Markup('<span class="supp">suppressed</span>')


def number(value: float | int | None) -> str:
    """A count or value as shown: whole numbers without decimals, others to one decimal."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.1f}"


class Formatter:
    """Formats report cells as safe HTML, showing hidden sizes and statistics as 'suppressed'."""

    def __init__(self, min_cell: int):
        self.min_cell = min_cell

    def n(self, value: int | None) -> Markup:
        return SUPPRESSED if value is None else Markup.escape(number(value))

    def share(self, s: dict, with_count: bool = True) -> Markup:
        if s["share"] is None:
            return SUPPRESSED if s["suppressed"] or s["n"] is None else Markup("—")
        pct = f"{100 * s['share']:.1f}%"
        return Markup("{} ({})").format(number(s["count"]), pct) if with_count else Markup.escape(pct)

    def summary(self, s: dict) -> Markup:
        if s["suppressed"]:
            return SUPPRESSED
        if s["median"] is None:
            return Markup("—")
        return Markup("{} ({}–{})").format(number(s["median"]), number(s["q1"]), number(s["q3"]))

    def survival(self, p: dict) -> Markup:
        if p["survival"] is None:
            return SUPPRESSED
        return Markup("{:.1f}% ({:.1f}–{:.1f})").format(100 * p["survival"], 100 * p["lower"], 100 * p["upper"])

    def median_days(self, m: dict, curve_end: int | None) -> Markup:
        if curve_end is None:
            return SUPPRESSED
        if m["median"] is None:
            return Markup("not reached by day {}").format(curve_end)
        lo = number(m["lower"]) if m["lower"] is not None else "—"
        hi = number(m["upper"]) if m["upper"] is not None else "not reached"
        return Markup("{} ({}–{})").format(number(m["median"]), lo, hi)


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


def _figures(r: dict) -> dict[str, str]:
    s = r["settings"]
    out = {
        "level_of_use": figures.level_of_use_figure(r["level_of_use"]["histograms"]),
        "weekly": figures.weekly_figure(r["duration"]["weekly"]),
        "km": figures.km_figure(r["duration"]["dropout"], s["confidence"]),
    }
    if r["subgroups"]:
        out["subgroup_weekly"] = figures.subgroup_weekly_figure(r["subgroups"])
        out["subgroup_km"] = figures.subgroup_km_figure(r["subgroups"])
    return out


def render_html(report: dict) -> str:
    """Render the report dict as a self-contained HTML page."""
    s = report["settings"]
    f = Formatter(s["min_cell"])
    weeks = [w for w in s["subgroup_weeks"] if w <= s["weeks"]]
    day = s["subgroup_survival_day"]

    def use_cells(level: dict) -> list:
        return [
            level["level"],
            f.n(level["n_enrolled"]),
            f.share(level["uptake"]["any_use"], with_count=False),
            f.summary(level["uptake"]["days_to_first_use"]),
            f.n(level["n_observed_window"]),
            *(f.summary(level["level_of_use"][name]) for name in LEVEL_MEASURES),
            f.share(level["completion"], with_count=False),
        ]

    def duration_cells(level: dict) -> list:
        dropout = level["dropout"]
        at = next((p for p in dropout["at_days"] if p["day"] == day), None)
        weekly = (Markup("{} ({})").format(f.share(level["weekly"][w - 1]["active"], with_count=False),
                                           f.n(level["weekly"][w - 1]["active"]["n"])) for w in weeks)
        return [
            level["level"],
            *weekly,
            f.n(dropout["n"]),
            f.median_days(dropout["median_days"], dropout["curve_end_day"]),
            f.survival(at) if at is not None else "—",
        ]

    return _environment().get_template(TEMPLATE).render(
        r=report, f=f, number=number, figs=_figures(report), sections=dict(SECTIONS), level_measures=LEVEL_MEASURES,
        overall=_overall(report), subgroup_weeks=weeks, use_cells=use_cells, duration_cells=duration_cells,
    )
