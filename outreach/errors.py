"""The one error type of the outreach stage: it names the file, field, column or row that is wrong."""

from __future__ import annotations


class OutreachError(ValueError):
    """Bad input to outreach (an outcome, a policy setting, a decisions table); the message names what broke.

    Messages name fields, columns and row numbers, never patient values.
    """

    def __init__(self, message: str, field: str | None = None, position: int | None = None):
        super().__init__(message)
        self.field = field
        # The 1-based position of the bad record in its batch or file, when one record is to blame.
        self.position = position


class OutcomeConflict(OutreachError):
    """An outcome id was already stored with a different body."""
