"""The report's figures, drawn from the report dict alone and returned as base64 PNG.

Figures are plain matplotlib `Figure` objects (no pyplot, no backend to pick, nothing global to close).
"""

from __future__ import annotations

import base64
import io

import matplotlib as mpl
from matplotlib.figure import Figure


COLOURS = ("#1f5f8b", "#c8553d", "#2a9d8f", "#8d6a9f", "#e9a03b", "#5c6b73", "#7a9e3b", "#b5838d")


# The report's look, applied around each figure only (the global matplotlib settings are left alone).
_STYLE = {
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "figure.dpi": 110,
}


def _png(fig: Figure) -> str:
    # Margins are set per figure (fig.subplots_adjust): automatic layout would lay out every text twice.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", metadata={"Software": None})
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _legend_or_note(ax, fontsize: float | None = None) -> None:
    """A legend when something was drawn, else a note that the groups were too small to show."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(frameon=False, fontsize=fontsize)
    else:
        ax.text(0.5, 0.5, "too few patients to show", ha="center", va="center", transform=ax.transAxes)


@mpl.rc_context(_STYLE)
def level_of_use_figure(h: dict, title: str) -> str:
    """Histogram of one level-of-use measure per patient (share of patients per bin); small bins not drawn."""
    fig = Figure(figsize=(4.8, 3))
    ax = fig.subplots()
    ax.set_title(title)
    if h["suppressed"] or not h["counts"]:
        ax.text(0.5, 0.5, "too few patients", ha="center", va="center", transform=ax.transAxes)
    else:
        shown = [(x, c) for x, c in zip(h["lower_edges"], h["counts"]) if c is not None]
        ax.bar([x for x, _ in shown], [100 * c / h["n"] for _, c in shown], width=h["width"] * 0.9, align="edge",
               color=COLOURS[0])
        ax.set_xlabel(f"per patient (last bar: {h['lower_edges'][-1]:g} or more)")
        ax.set_ylabel("% of patients")
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.17, top=0.9)
    return _png(fig)


@mpl.rc_context(_STYLE)
def weekly_figure(weekly: list[dict], title: str = "Weekly use among patients observed through each week") -> str:
    """Weekly active share and share meeting the recommended sessions, weeks 1..K."""
    fig = Figure(figsize=(7, 3))
    ax = fig.subplots()
    lines = (("active", "any own engagement", COLOURS[0]), ("dose_met", "met recommended sessions", COLOURS[1]))
    for key, label, colour in lines:
        points = [(w["week"], 100 * w[key]["share"]) for w in weekly if w[key]["share"] is not None]
        if points:
            ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", color=colour, label=label)
    ax.set_xticks([w["week"] for w in weekly])
    ax.set_xlabel("week since enrolment")
    ax.set_ylabel("% of patients")
    ax.set_ylim(0, 100)
    ax.set_title(title)
    _legend_or_note(ax)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.16, top=0.9)
    return _png(fig)


def _km_axes(ax, curve: list[dict], colour: str, label: str | None, band: bool = True) -> None:
    if not curve:
        return
    # Survival on day d covers the whole day: draw it as a step from d to d + 1.
    days = [p["day"] for p in curve] + [curve[-1]["day"] + 1]
    surv = [100 * p["survival"] for p in curve]
    ax.step(days, surv + surv[-1:], where="post", color=colour, label=label, linewidth=1.5)
    if band:
        lower = [100 * p["lower"] for p in curve]
        upper = [100 * p["upper"] for p in curve]
        ax.fill_between(days, lower + lower[-1:], upper + upper[-1:], step="post", color=colour, alpha=0.2, linewidth=0)


@mpl.rc_context(_STYLE)
def km_figure(dropout: dict, confidence: float) -> str:
    """Kaplan-Meier curve of time to dropout with its confidence band."""
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    _km_axes(ax, dropout["curve"], COLOURS[0], f"still using (band: {100 * confidence:g}% CI)")
    ax.set_ylim(0, 100)
    ax.set_xlabel("days since enrolment")
    ax.set_ylabel("% not yet dropped out")
    ax.set_title("Time to dropout (Kaplan-Meier)")
    _legend_or_note(ax)
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.15, top=0.9)
    return _png(fig)


def subgroup_km_figures(subgroups: list[dict]) -> list[str]:
    """One panel per subgroup: Kaplan-Meier curves of its shown levels."""
    return [_panel(group, _draw_km_panel) for group in subgroups]


def subgroup_weekly_figures(subgroups: list[dict]) -> list[str]:
    """One panel per subgroup: weekly active share of its shown levels."""
    return [_panel(group, _draw_weekly_panel) for group in subgroups]


@mpl.rc_context(_STYLE)
def _panel(group: dict, draw) -> str:
    # One small figure per subgroup, laid out by the page: two or three a row on a screen, one on a phone.
    fig = Figure(figsize=(4.8, 3))
    ax = fig.subplots()
    draw(ax, group)
    ax.set_title(group["label"])
    ax.set_ylim(0, 100)
    _legend_or_note(ax, fontsize=7)
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.17, top=0.9)
    return _png(fig)


def _draw_km_panel(ax, group: dict) -> None:
    for i, level in enumerate(group["levels"]):
        _km_axes(ax, level["dropout"]["curve"], COLOURS[i % len(COLOURS)], level["level"], band=False)
    ax.set_xlabel("days since enrolment")
    ax.set_ylabel("% not yet dropped out")


def _draw_weekly_panel(ax, group: dict) -> None:
    for i, level in enumerate(group["levels"]):
        points = [(w["week"], 100 * w["active"]["share"]) for w in level["weekly"] if w["active"]["share"] is not None]
        if points:
            colour = COLOURS[i % len(COLOURS)]
            ax.plot([p[0] for p in points], [p[1] for p in points], marker=".", color=colour, label=level["level"])
    ax.set_xlabel("week since enrolment")
    ax.set_ylabel("% active")


@mpl.rc_context({**_STYLE, "font.size": 10, "axes.spines.left": False})
def subgroup_share_figure(levels: list[tuple[str, dict]], overall: dict | None, xlabel: str) -> str:
    """Dot-and-interval chart of one share across the levels of one subgroup: a dot at the share and a line
    over its confidence interval; a suppressed level is named and marked 'suppressed', never drawn.
    `overall` (the all-patients share) is drawn as a dashed reference line when shown."""
    fig = Figure(figsize=(4.8, 0.34 * len(levels) + 0.95))
    ax = fig.subplots()
    ys = list(range(len(levels)))[::-1]
    for y, (_, s) in zip(ys, levels):
        if s["share"] is None:
            ax.text(1, y, "suppressed", va="center", ha="left", color="#555", style="italic", zorder=3,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 1})
            continue
        ax.plot([100 * s["lower"], 100 * s["upper"]], [y, y], color=COLOURS[0], linewidth=2, solid_capstyle="butt")
        ax.plot([100 * s["share"]], [y], "o", color=COLOURS[0], markersize=6)
        ax.text(100 * s["upper"] + 1.5, y, f"{100 * s['share']:.1f}%", va="center", ha="left", fontsize=9)
    if overall is not None and overall["share"] is not None:
        ax.axvline(100 * overall["share"], color="#888", linestyle="--", linewidth=1, label="all patients")
        ax.legend(frameon=False, fontsize=8, loc="lower right", bbox_to_anchor=(1, 1), borderaxespad=0)
    ax.set_yticks(ys, [label for label, _ in levels])
    ax.tick_params(axis="y", length=0)
    ax.set_ylim(-0.6, len(levels) - 0.4)
    ax.set_xlim(0, 100)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    height = 0.34 * len(levels) + 0.95
    fig.subplots_adjust(left=0.3, right=0.97, bottom=0.5 / height, top=1 - 0.3 / height)
    return _png(fig)
