"""Request ids: the caller's X-Request-ID when it is sane, else a new one; one per request, on every reply.

The edge (serving/edge.py) picks the id before anything else runs and keeps it in a context
variable, so the endpoints record it on their decision rows (`current_request_id`) and every
reply, refusals included, carries it back in `X-Request-ID`. A caller's id is kept only when it
is 1-40 characters of letters, digits and `._:-` (it is stored in the decision log's
`request_id` column); anything else is replaced, never echoed.
"""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

HEADER = b"x-request-id"
_SANE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,39}$")
_CURRENT: ContextVar[str | None] = ContextVar("lapse_request_id", default=None)


def new_request_id() -> str:
    """A fresh random request id (32 hex characters)."""
    return uuid.uuid4().hex


def accept(sent: str | None) -> str:
    """The caller's id when it is sane, else a new one."""
    if sent is not None and _SANE.fullmatch(sent):
        return sent
    return new_request_id()


def begin(sent: str | None) -> str:
    """Pick this request's id and make it the current one (for the rest of this request's task)."""
    chosen = accept(sent)
    _CURRENT.set(chosen)
    return chosen


def current_request_id() -> str:
    """The id of the request being answered; a new one outside a request (e.g. warm-up)."""
    return _CURRENT.get() or new_request_id()
