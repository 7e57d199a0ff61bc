"""POST /outcomes as a plain function: validated outcomes in, stored next to the decision log, a typed reply out.

Every outcome must name a decision the service logged (else 422 naming its position); an outcome id
already stored with a different body is a conflict (409 naming the position); either way nothing from
the request is stored. A retry of stored outcomes stores nothing and returns their first recording time.
Replies and errors name positions and fields, never ids or other values sent.
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.responses import JSONResponse

from outreach.decisions_table import check_decisions_exist
from outreach.errors import OutcomeConflict, OutreachError
from outreach.outcomes import Outcome, record_outcomes_detailed

from .schemas import OutcomeRecorded, OutcomesResponse


def _refusal(status: int, error: OutreachError) -> JSONResponse:
    position = error.position
    where = f"outcomes[{position - 1}]" if position else "outcomes"
    field = f"{where}.{error.field}" if error.field else where
    rule = str(error).split(": ", 1)[-1] if position else str(error)
    message = ("an outcome_id is already stored with a different body; nothing was stored" if status == 409
               else "the request breaks the rules below; nothing was stored")
    return JSONResponse(status_code=status, content={"error": message, "problems": [
        {"field": field, "rule": rule, "type": "conflict" if status == 409 else "unknown_decision"}]})


def record(outcomes: Sequence[Outcome], db_url: str) -> OutcomesResponse | JSONResponse:
    """Check and store `outcomes` in one transaction; the reply, or a 422/409 refusal."""
    try:
        check_decisions_exist(outcomes, db_url)
        recorded = record_outcomes_detailed(outcomes, db_url)
    except OutcomeConflict as error:
        return _refusal(409, error)
    except OutreachError as error:
        return _refusal(422, error)
    each = [recorded[o.outcome_id] for o in outcomes]
    # An id sent twice in one request is stored once: its later copies count as already stored.
    seen: set[str] = set()
    rows = []
    for outcome, r in zip(outcomes, each):
        new = r.new and outcome.outcome_id not in seen
        seen.add(outcome.outcome_id)
        rows.append(OutcomeRecorded(recorded_at=r.recorded_at, status="stored" if new else "already_stored"))
    stored = sum(row.status == "stored" for row in rows)
    return OutcomesResponse(stored=stored, already_stored=len(rows) - stored, outcomes=rows)
