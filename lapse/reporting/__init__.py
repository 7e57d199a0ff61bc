"""The engagement report: recommended use, uptake, level and duration of use, completion, by subgroup."""

from lapse.reporting.build import build_report
from lapse.reporting.html import render_html

__all__ = ["build_report", "render_html"]
