"""The clinician page at /ui of the risk service: sign-in, the patient list, one patient, the model card.

`ClinicianPage` is a Starlette app mounted by the service; the service attaches its own model
store, decision log and data folder to it on start-up, so the page and the API answer from the
same objects. Sign-in takes one of the service's API keys and opens a server-side session
(serving/sessions.py) named by a signed, HttpOnly, SameSite=Strict cookie (the key itself never
leaves the server after the form post); the HTML page redirects to the sign-in form without a
session and the JSON answers 401. Failed sign-ins are limited per client (429 with Retry-After);
a POST must carry an Origin equal to the configured public origin or the address the server is
bound to (the Host header is not trusted). The list snapshot (decision log + each patient's activity) is
built in a worker thread, at start-up and then in the background once older than
`Hardening.overview_cache_s`, so loading the page neither waits for it nor slows /score down.
Patient identifiers travel in request bodies, not URLs, so access logs carry none.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from config import ClinicianPageConfig
from models.loaded import LoadedModel
from outreach.configured import policy_settings
from outreach.settings import PolicySettings

from .auth import KeyRing
from .card_view import model_card_view
from .ratelimit import FailureLimiter
from .sessions import Sessions, SessionsUnavailable
from .settings import Hardening, outreach_config
from .timeline import CohortSource
from .ui_data import latest_two, newest_decision, patient_list, patient_view
from .ui_http import (SECURITY_HEADERS, _base, _body, _error, _json, _same_origin, _secure,  # noqa: F401
                      allowed_origins, login_html)
from .ui_work import WorkQueueRoutes
from .work_queue import Activity, activity

log = logging.getLogger("lapse.serving.ui")
STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "lapse_session"
_PATIENT_ID_MAX = 128


@dataclass
class Sources:
    """The service objects the page answers from."""

    model: Callable[[], LoadedModel | None]
    engine: Callable[[], Any]  # the decision log's sqlalchemy Engine now (None while it cannot be opened)
    cohort: CohortSource
    top_reasons: int


@dataclass(frozen=True)
class Snapshot:
    """The decision log as the page last read it: list rows, latest decisions, each patient's activity."""

    at: float
    version: str | None
    rows: list[dict[str, Any]]
    latest: dict[str, dict[str, Any]]
    states: dict[str, Activity]
    lapsed_after: int
    body: bytes
    last_decision: int | None  # the decision log's newest row id when the snapshot was read


class ClinicianPage(WorkQueueRoutes, Starlette):
    """The /ui sub-application; answers 503 until the service attaches its objects."""

    def __init__(self, config: ClinicianPageConfig = ClinicianPageConfig(), keys: KeyRing | None = None,
                 settings: Hardening = Hardening(), policy: PolicySettings | None = None) -> None:
        self.config = config
        self.settings = settings
        self._policy = policy
        self.sessions = Sessions(keys if keys is not None else KeyRing.from_env(), config.session_hours)
        self.failures = FailureLimiter(settings.failed_auth_limit, settings.failed_auth_window_s)
        self.sources: Sources | None = None
        self._overview: Snapshot | None = None
        self._refreshing = threading.Lock()
        self._overview_lock: anyio.Lock | None = None
        super().__init__(routes=[
            Route("/", self.page, methods=["GET"]),
            Route("/login", self.login_form, methods=["GET"]),
            Route("/login", self.login, methods=["POST"]),
            Route("/logout", self.logout, methods=["POST"]),
            Route("/api/overview", self.overview, methods=["GET"]),
            Route("/api/patient", self.patient, methods=["POST"]),
            Route("/api/model", self.model_card, methods=["GET"]),
            Route("/api/today", self.today_queue, methods=["GET"]),
            Route("/api/mark", self.mark_patient, methods=["POST"]),
            Route("/api/assign", self.assign_patient, methods=["POST"]),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ])

    def attach(self, model: Callable[[], LoadedModel | None], decision_engine: Any, data_dir: str | Path | None,
               top_reasons: int) -> None:
        """Answer from the service's model store, decision log engine (or a function giving it) and data folder."""
        engine = decision_engine if callable(decision_engine) else (lambda: decision_engine)
        self.sessions.bind(engine)
        self.sources = Sources(model, engine, CohortSource(data_dir, self.config.data_check_seconds), top_reasons)
        # Reading a large data folder and the first re-scoring take seconds: do them now, in the background,
        # not on the first page load after a restart.
        threading.Thread(target=self._warm, name="lapse-ui-warm", daemon=True).start()

    def _warm(self) -> None:
        """Read the data folder, build the list snapshot and Today's queue once, so later loads reuse them."""
        try:
            self.sources.cohort.warm()
            model = self.sources.model()
            if model is not None and self.sources.engine() is not None:
                self._overview = self._build_snapshot(model)
                self._build_today(self._overview)
        except Exception as error:  # noqa: BLE001 - only a head start; the first page load does it otherwise
            log.warning("clinician page: start-up read failed (%s)", type(error).__name__)

    @property
    def policy(self) -> PolicySettings:
        """The outreach policy that ranks Today's queue: the service's [outreach] settings (the same policy
        /score and /triage decide with), its risk threshold defaulting to the served model's trigger risk."""
        if self._policy is not None:
            return self._policy
        model = self.sources.model() if self.sources is not None else None
        return policy_settings(outreach_config(), model.trigger_risk if model is not None else 0.5)

    _json = staticmethod(_json)
    _error = staticmethod(_error)

    def _same_origin(self, request: Request) -> bool:
        return _same_origin(request, self.settings.public_origin)

    async def _read_body(self, request: Request) -> bytes | None:
        return await _body(request, self.config.max_body_bytes)

    async def _signed_in(self, request: Request) -> bool:
        # A database read: done in a worker thread, off the event loop /score is answered on.
        return await anyio.to_thread.run_sync(self.sessions.valid, request.cookies.get(COOKIE))

    # --- pages ---------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        if not await self._signed_in(request):
            return _secure(RedirectResponse(f"{_base(request)}/login", status_code=303))
        return _secure(FileResponse(STATIC / "ui.html", media_type="text/html"))

    async def login_form(self, request: Request) -> Response:
        if await self._signed_in(request):
            return _secure(RedirectResponse(f"{_base(request)}/", status_code=303))
        return _secure(HTMLResponse(login_html()))

    async def login(self, request: Request) -> Response:
        if not _same_origin(request, self.settings.public_origin):
            return _secure(HTMLResponse(login_html("Sign in from this page."), status_code=403))
        client = request.client.host if request.client else "unknown"
        wait = self.failures.retry_after(client)
        if wait is not None:
            response = HTMLResponse(login_html("Too many attempts. Wait a few minutes, then try again."),
                                    status_code=429, headers={"retry-after": str(wait)})
            return _secure(response)
        body = await _body(request, self.config.max_body_bytes)
        if body is None:
            return _secure(HTMLResponse(login_html("That was too long to be an access key."), status_code=413))
        try:
            key = parse_qs(body.decode("utf-8"), max_num_fields=4).get("key", [""])[0].strip()
        except (UnicodeDecodeError, ValueError):
            key = ""
        try:
            token = await anyio.to_thread.run_sync(self.sessions.issue, key) if key else None
        except SessionsUnavailable:
            return _secure(HTMLResponse(login_html("Sign-in is unavailable right now; try again shortly."),
                                        status_code=503, headers={"retry-after": "5"}))
        if token is None:
            self.failures.failed(client)
            return _secure(HTMLResponse(login_html("That access key was not accepted. Check it and try again."),
                                        status_code=401))
        response = RedirectResponse(f"{_base(request)}/", status_code=303)
        response.set_cookie(COOKIE, token, max_age=int(self.sessions.seconds), path=f"{_base(request)}/",
                            httponly=True, samesite="strict", secure=request.url.scheme == "https")
        return _secure(response)

    async def logout(self, request: Request) -> Response:
        if not _same_origin(request, self.settings.public_origin):
            return _error(403, "sign out from the page itself")
        await anyio.to_thread.run_sync(self.sessions.revoke, request.cookies.get(COOKIE))
        response = RedirectResponse(f"{_base(request)}/login", status_code=303)
        response.delete_cookie(COOKIE, path=f"{_base(request)}/", httponly=True, samesite="strict")
        return _secure(response)

    # --- JSON the page reads ---------------------------------------------------------------------

    async def _gate(self, request: Request) -> Response | None:
        if not await self._signed_in(request):
            return _error(401, "sign in first")
        if self.sources is None or self.sources.engine() is None:
            return _error(503, "the service is still starting; try again shortly")
        return None

    async def overview(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        snapshot = await self._snapshot()
        return _secure(Response(snapshot.body, media_type="application/json"))

    def _build_snapshot(self, model: LoadedModel | None) -> Snapshot:
        """The patient list from the decision log and each patient's activity from the data folder.

        Nothing is re-scored here (that is done per patient page and for Today's few patients), so the
        first load after a restart is as quick as the next.
        """
        sources = self.sources
        last_decision = newest_decision(sources.engine())
        rows = latest_two(sources.engine())
        latest = {r["patient_id"]: r for r in rows if r["at_rank"] == 1}
        lapsed_after = self.config.lapsed_after_days or (model.horizon_days if model else 14)
        try:
            states = activity(sources.cohort, {pid: r["as_of"] for pid, r in latest.items()})
        except Exception as error:  # noqa: BLE001 - the list still shows without activity
            log.warning("clinician page: activity not read from the data folder (%s)", type(error).__name__)
            states = {}
        listing = patient_list(rows, self.config.list_limit, states, lapsed_after)
        listing["tiers"] = [name for name, _ in model.tiers] if model else sorted({p["tier"] for p in
                                                                                  listing["patients"]})
        listing["model"] = None if model is None else {"name": model.name, "version": model.version}
        listing["horizon_days"] = None if model is None else model.horizon_days
        listing["timeline_available"] = sources.cohort.configured
        listing["lapsed_after_days"] = lapsed_after
        body = json.dumps(listing, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode("utf-8")
        return Snapshot(time.monotonic(), None if model is None else model.version, listing["patients"], latest,
                        states, lapsed_after, body, last_decision)

    async def _snapshot(self) -> Snapshot:
        """The list snapshot. Built in a worker thread (concurrent loads share one build) when there is none or
        the model changed or new decisions were logged; otherwise, once older than `overview_cache_s` (the
        patients' activity in the data folder may have moved on), it is still answered from while a background
        thread rebuilds it."""
        if self._overview_lock is None:
            self._overview_lock = anyio.Lock()
        model = self.sources.model()
        version = None if model is None else model.version
        cached = self._overview
        newest = await anyio.to_thread.run_sync(newest_decision, self.sources.engine())
        if cached is not None and cached.version == version and cached.last_decision == newest:
            stale = time.monotonic() - cached.at > self.settings.overview_cache_s
            if stale and self._refreshing.acquire(blocking=False):
                threading.Thread(target=self._refresh, args=(model,), name="lapse-ui-refresh", daemon=True).start()
            return cached
        async with self._overview_lock:
            cached = self._overview
            if cached is None or cached.version != version or cached.last_decision != newest:
                cached = await anyio.to_thread.run_sync(self._build_snapshot, model)
                self._overview = cached
        return cached

    def _refresh(self, model: LoadedModel | None) -> None:
        try:
            self._overview = self._build_snapshot(model)
        except Exception as error:  # noqa: BLE001 - the previous snapshot keeps answering
            log.warning("clinician page: list not refreshed (%s)", type(error).__name__)
        finally:
            self._refreshing.release()

    async def patient(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        if request.headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return _error(415, "send JSON: {\"patient_id\": ...}")
        body = await _body(request, self.config.max_body_bytes)
        if body is None:
            return _error(413, f"request body is over the limit of {self.config.max_body_bytes} bytes")
        try:
            patient_id = json.loads(body).get("patient_id")
        except (ValueError, AttributeError):
            patient_id = None
        if not isinstance(patient_id, str) or not 0 < len(patient_id) <= _PATIENT_ID_MAX:
            return _error(422, "patient_id: must be a text of 1 to 128 characters")
        sources = self.sources
        try:
            view = await anyio.to_thread.run_sync(
                patient_view, sources.engine(), patient_id, sources.model(), sources.cohort,
                sources.top_reasons, self.config.timeline_days)
        except Exception as error:  # noqa: BLE001 - say what broke, never with which values
            log.warning("clinician page: patient view failed (%s)", type(error).__name__)
            return _error(500, "the patient could not be shown")
        if view is None:
            return _error(404, "no score has been recorded for this patient")
        return _json(view)

    async def model_card(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        model = self.sources.model()
        if model is None:
            return _error(503, "no model is being served yet; try again shortly")
        return _json(await anyio.to_thread.run_sync(model_card_view, model))


def page_url(base_url: str) -> str:
    """Where the clinician page of a service at `base_url` answers."""
    return f"{base_url.rstrip('/')}/ui/"
