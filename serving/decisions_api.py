"""GET /decisions: the decision log read back, filtered by patient and time, a page at a time.

Decisions come oldest first by their row id (the order they were committed), so a page never
shifts when new decisions arrive: `next_cursor` is the last id of the page, and the next page
starts after it. `since` (inclusive) and `until` (exclusive) filter on when the decision was made.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import sqlalchemy as sa
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from .decision_log import DECISIONS
from .guard import problems_of
from .schemas import DecisionPage, DecisionRecord, PatientId

MAX_LIMIT = 1000


class DecisionQuery(BaseModel):
    """The query parameters of GET /decisions."""

    model_config = ConfigDict(extra="forbid")

    patient_id: PatientId | None = None
    since: AwareDatetime | None = None
    until: AwareDatetime | None = None
    cursor: str | None = Field(default=None, pattern=r"^[0-9]{1,18}$")
    limit: int = Field(default=100, ge=1, le=MAX_LIMIT)


class QueryProblems(ValueError):
    """The query breaks its rules; `problems` name the parameter and the rule."""

    def __init__(self, problems: list[dict[str, str]]) -> None:
        super().__init__("the query breaks its rules")
        self.problems = problems


def parse_query(params: list[tuple[str, str]]) -> DecisionQuery:
    """The query from its parameters (each at most once), or QueryProblems."""
    seen: dict[str, str] = {}
    for name, value in params:
        if name in seen:
            raise QueryProblems([{"field": name[:40], "rule": "give this parameter once", "type": "repeated"}])
        seen[name] = value
    try:
        return DecisionQuery.model_validate(seen)
    except ValidationError as error:
        raise QueryProblems(problems_of(error)) from None


def _utc(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat()


def read_page(engine: sa.Engine, query: DecisionQuery) -> DecisionPage:
    """One page of decisions that match `query`, oldest first."""
    select = sa.select(DECISIONS).order_by(DECISIONS.c.id).limit(query.limit + 1)
    if query.patient_id is not None:
        select = select.where(DECISIONS.c.patient_id == query.patient_id)
    if query.since is not None:
        select = select.where(DECISIONS.c.decided_at >= _utc(query.since))
    if query.until is not None:
        select = select.where(DECISIONS.c.decided_at < _utc(query.until))
    if query.cursor is not None:
        select = select.where(DECISIONS.c.id > int(query.cursor))
    with engine.connect() as connection:
        rows = connection.execute(select).mappings().all()
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    records = [DecisionRecord.model_validate({**row, "reasons": json.loads(row["reasons"])}) for row in rows]
    return DecisionPage(decisions=records, next_cursor=str(rows[-1]["id"]) if more else None)
