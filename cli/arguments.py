"""Typed argument parsers shared by the sub-commands of the lapse CLI."""

from __future__ import annotations

import argparse


def positive_int(text: str) -> int:
    """A whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("must be a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def as_of_days(text: str) -> tuple[int, ...]:
    """Comma-separated whole days after enrolment, sorted and without repeats."""
    try:
        days = tuple(sorted({int(part) for part in text.split(",") if part.strip()}))
    except ValueError:
        raise argparse.ArgumentTypeError("as-of days must be whole numbers separated by commas, e.g. 3,7,14") from None
    if not days or days[0] < 0:
        raise argparse.ArgumentTypeError("as-of days must be a non-empty list of whole days >= 0")
    return days
