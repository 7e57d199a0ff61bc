"""The clinician page's work-queue answers: Today's queue, a coach's marks, assigning a patient to a coach.

A mix-in of `ClinicianPage` (serving/ui.py): the queue is built in the page's own process from its latest
list (the decision log and each patient's activity), so it answers quickly and off the scoring process;
only the few patients in Today are re-explained from the data folder, for their "why now" line
(serving/page_jobs.py). Marks and assignments are POSTs from the page itself (same Origin check as
sign-out) and carry patient ids in the body, never the URL.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from .page_jobs import TodayJob
from .page_worker import cause
from .ui_http import _secure
from .work_queue import MARKS, assign, assignments, ensure_tables, mark

log = logging.getLogger("lapse.serving.ui")
_COACH_MAX = 128


class WorkQueueRoutes:
    """Handlers for /api/today, /api/mark and /api/assign (the host class supplies the helpers used)."""

    async def today_queue(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        try:
            # Today is chosen from the list the page's process built last, at most overview_cache_s old.
            await self._snapshot()
            body = await anyio.to_thread.run_sync(self.worker.call, TodayJob(self.policy), self.sources.model())
        except Exception as error:  # noqa: BLE001 - say what broke, never with which values
            log.warning("clinician page: today's queue failed (%s)", cause(error))
            return self._error(500, "today's queue could not be built")
        return _secure(Response(body, media_type="application/json"))

    async def _patient_body(self, request: Request) -> tuple[dict[str, Any] | None, Response | None]:
        refused = await self._gate(request)
        if refused is not None:
            return None, refused
        if not self._same_origin(request):
            return None, self._error(403, "send this from the page itself")
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return None, self._error(415, "send JSON")
        raw = await self._read_body(request)
        if raw is None:
            return None, self._error(413, "the request body is over the limit")
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return None, self._error(422, "send a JSON object")
        patient_id = body.get("patient_id")
        if not isinstance(patient_id, str) or not 0 < len(patient_id) <= 128:
            return None, self._error(422, "patient_id: must be a text of 1 to 128 characters")
        return body, None

    async def mark_patient(self, request: Request) -> Response:
        body, refused = await self._patient_body(request)
        if refused is not None:
            return refused
        what = body.get("mark")
        if what not in MARKS:
            return self._error(422, f"mark: must be one of {', '.join(MARKS)}")
        engine = self.sources.engine()

        def store() -> Any:
            ensure_tables(engine)
            return mark(engine, body["patient_id"], what, assignments(engine).get(body["patient_id"]))

        outcome = await anyio.to_thread.run_sync(store)
        if outcome is None:
            return self._error(404, "no score has been recorded for this patient")
        return self._json({"kind": outcome.kind.value, "at": outcome.at.isoformat(),
                           "decision_id": outcome.decision_id})

    async def assign_patient(self, request: Request) -> Response:
        body, refused = await self._patient_body(request)
        if refused is not None:
            return refused
        coach = body.get("coach")
        if not isinstance(coach, str) or len(coach.strip()) > _COACH_MAX:
            return self._error(422, f"coach: must be a text of at most {_COACH_MAX} characters (empty: unassign)")
        engine = self.sources.engine()

        def store() -> None:
            ensure_tables(engine)
            assign(engine, body["patient_id"], coach.strip())

        await anyio.to_thread.run_sync(store)
        return self._json({"coach": coach.strip() or None})
