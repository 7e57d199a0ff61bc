"""How the report writes numbers, shares, intervals and dates in its text: one place for every format."""

from __future__ import annotations

import pandas as pd
from markupsafe import Markup

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
          "November", "December")


def number(value: float | int | None) -> str:
    """A count or value as shown: whole numbers without decimals (with thousands commas), others to one decimal."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:.1f}"


def percent(share: float) -> str:
    """A share (0..1) as a percentage to one decimal: 0.7633 -> '76.3%'."""
    return f"{100 * share:.1f}%"


def share_interval(lower: float, upper: float) -> str:
    """A share's confidence limits as percentages: '74.8–77.8%'."""
    return f"{100 * lower:.1f}–{100 * upper:.1f}%"


def ci_label(confidence: float) -> str:
    """'95% CI' for 0.95."""
    return f"{100 * confidence:g}% CI"


def interval_span(text: str) -> Markup:
    """An interval as one unbreakable piece of HTML (the page never wraps inside an interval)."""
    return Markup('<span class="ci">{}</span>').format(text)


def date_words(iso: str | None) -> str:
    """An ISO 8601 time as a date in words, in its own time zone: '2025-12-30T00:00:00+00:00' -> '30 December 2025'."""
    if not iso:
        return "—"
    t = pd.Timestamp(iso)
    return f"{t.day} {MONTHS[t.month - 1]} {t.year}"


def month_words(year_month: str | None) -> str:
    """A 'YYYY-MM' month in words: '2025-09' -> 'September 2025'."""
    if not year_month:
        return "—"
    year, month = year_month.split("-")
    return f"{MONTHS[int(month) - 1]} {year}"


def month_span_words(first: str | None, last: str | None) -> str:
    """An enrolment period in words: 'September to November 2025', 'December 2025 to January 2026', 'May 2025'."""
    if not first or not last:
        return "—"
    if first == last:
        return month_words(first)
    if first[:4] == last[:4]:
        return f"{MONTHS[int(first[5:7]) - 1]} to {month_words(last)}"
    return f"{month_words(first)} to {month_words(last)}"
