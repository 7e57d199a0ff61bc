"""The engagement report: recommended use, uptake, level and duration of use, completion, by subgroup."""

from reporting.build import build_report
from reporting.html import render_html

__all__ = ["build_report", "render_html"]
