"""Problems found in a cohort's tables and their report: each names the file, the column, the rule and the
rows (1-based data row numbers), never the offending values (these are health records)."""

from __future__ import annotations

from dataclasses import dataclass

from config import LapseError
from features.contract import EVENT_COLUMNS, PATIENT_COLUMNS

ROWS_SHOWN = 5
ERROR = "error"
NOTE = "note"


@dataclass(frozen=True)
class Problem:
    """One broken contract rule, located by file, column and row numbers (never by value)."""

    source: str
    column: str | None
    rule: str
    message: str
    rows: tuple[int, ...] = ()  # the first ROWS_SHOWN offending row numbers, 1-based
    n_rows: int = 0  # how many rows break the rule in all
    severity: str = ERROR

    def __str__(self) -> str:
        return self.describe()

    def describe(self, with_source: bool = True) -> str:
        """The problem in words: where (file, column), the rule, and the rows."""
        where = [self.source] if with_source else []
        if self.column is not None:
            where.append(f"column '{self.column}'")
        rows = f" ({describe_rows(self.rows, self.n_rows)})" if self.n_rows else ""
        return f"{', '.join(where)}: {self.message}{rows}" if where else f"{self.message}{rows}"


class ContractError(LapseError, ValueError):
    """The data breaks the contract; `.problems` lists every problem, str() is the full report."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        super().__init__(format_report(self.problems))


def describe_rows(rows: tuple[int, ...], n_rows: int) -> str:
    """'row 4', 'rows 2, 9' or 'rows 1, 2, 3, 4, 5 and 12 more'."""
    shown = ", ".join(str(r) for r in rows)
    more = f" and {n_rows - len(rows)} more" if n_rows > len(rows) else ""
    return f"row{'s' if n_rows > 1 else ''} {shown}{more}"


def format_report(problems: list[Problem]) -> str:
    """The readable report: every error grouped by file (columns kept together), then the notes."""
    errors = [p for p in problems if p.severity == ERROR]
    notes = [p for p in problems if p.severity != ERROR]
    lines = []
    if errors:
        lines.append(f"The data breaks the lapse data contract: {len(errors)} problem{'s' * (len(errors) > 1)}.")
        if any(p.n_rows for p in errors):
            lines.append("Row numbers count data rows from 1 (a CSV header line is not counted).")
        by_source: dict[str, list[Problem]] = {}
        for p in errors:
            by_source.setdefault(p.source, []).append(p)
        for source, found in by_source.items():
            lines.append(f"{source}:")
            lines.extend(f"  - {p.describe(with_source=False)}" for p in sorted(found, key=_column_order))
    if notes:
        lines.append("Notes:")
        lines.extend(f"  - {p}" for p in notes)
    return "\n".join(lines)


_CONTRACT_ORDER = {name: i for i, name in enumerate(dict.fromkeys(c.name for c in PATIENT_COLUMNS + EVENT_COLUMNS))}


def _column_order(p: Problem) -> int:
    """File-level problems first, then contract columns in contract order, then other columns."""
    return -1 if p.column is None else _CONTRACT_ORDER.get(p.column, len(_CONTRACT_ORDER))


def errors_in(problems: list[Problem]) -> list[Problem]:
    """Only the problems that make the data unusable (not the notes)."""
    return [p for p in problems if p.severity == ERROR]
