"""The clinician page's work-queue answers: Today's queue, a coach's marks, assigning a patient to a coach.

A mix-in of `ClinicianPage` (serving/ui.py): the queue is built from the page's cached snapshot of the
decision log (the patient list and each patient's activity), so it answers quickly; only the few patients
in Today are re-explained from the data folder, for their "why now" line. Marks and assignments are POSTs
from the page itself (same Origin check as sign-out) and carry patient ids in the body, never the URL.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import Response

from models.reasons import group_reasons

from .ui_data import recompute
from .work_queue import MARKS, assign, assignments, ensure_tables, mark, marks_by_patient, today, why_now

log = logging.getLogger("lapse.serving.ui")
_COACH_MAX = 128


class WorkQueueRoutes:
    """Handlers for /api/today, /api/mark and /api/assign (the host class supplies the helpers used)."""

    async def today_queue(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        snapshot = await self._snapshot()
        try:
            body = await anyio.to_thread.run_sync(self._build_today, snapshot)
        except Exception as error:  # noqa: BLE001 - say what broke, never with which values
            log.warning("clinician page: today's queue failed (%s)", type(error).__name__)
            return self._error(500, "today's queue could not be built")
        return self._json(body)

    def _build_today(self, snapshot: Any) -> dict[str, Any]:
        sources, config = self.sources, self.config
        engine = sources.engine()
        ensure_tables(engine)
        coaches = assignments(engine)
        model = sources.model()
        lapsed_after = snapshot.lapsed_after
        capacity = self.policy.capacity_per_day
        capacity = config.today_capacity if capacity is None else capacity
        chosen = today(snapshot.rows, snapshot.states, coaches, self.policy, config.today_capacity, lapsed_after,
                       config.recently_lapsed_days,
                       # One decision time per day, so a randomized policy's draws hold all day.
                       datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0))
        by_id = {r["patient_id"]: r for r in snapshot.rows}
        reasons: dict[str, str] = {}
        if model is not None and chosen:
            try:
                answers = recompute(model, sources.cohort, [snapshot.latest[c["patient_id"]] for c in chosen],
                                    len(model.feature_names))
            except Exception as error:  # noqa: BLE001 - the queue still shows without the reason words
                log.warning("clinician page: reasons for today's queue not recomputed (%s)", type(error).__name__)
                answers = {}
            for pid, answer in answers.items():
                # The line already says when they last used the program; background is not a "why now".
                raising = [g for g in group_reasons(answer.score.reasons, 5) if g.raises
                           and g.theme not in ("inactivity", "background", "time")]
                if raising:
                    reasons[pid] = raising[0].sentence
        marks = marks_by_patient(engine)
        rows = []
        for c in chosen:
            row = by_id[c["patient_id"]]
            state = snapshot.states.get(c["patient_id"])
            rows.append({**c, "risk": row["risk"], "tier": row["tier"], "program": row["program"],
                         "why": why_now(row, state, reasons.get(c["patient_id"]), c["section"] == "lapsed"),
                         "coach": coaches.get(c["patient_id"]),
                         "marks": marks.get(c["patient_id"], [])})
        return {"capacity": capacity, "policy": self.policy.policy, "lapsed_after_days": lapsed_after,
                "recently_lapsed_days": config.recently_lapsed_days, "patients": rows,
                "activity_known": bool(snapshot.states), "coaches": sorted(set(coaches.values()))}

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
