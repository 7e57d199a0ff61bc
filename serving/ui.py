"""The clinician page at /ui of the risk service: sign-in, the patient list, one patient, the model card.

`ClinicianPage` is a Starlette app mounted by the service; the service attaches its own model
store, decision log and data folder to it on start-up, so the page and the API answer from the
same objects. Sign-in takes one of the service's API keys and opens a server-side session
(serving/sessions.py) named by a signed, HttpOnly, SameSite=Strict cookie (the key itself never
leaves the server after the form post); the HTML page redirects to the sign-in form without a
session and the JSON answers 401. Failed sign-ins are limited per client (429 with Retry-After);
a POST must carry an Origin equal to the configured public origin or the address the server is
bound to (the Host header is not trusted). The patient list (decision log + each patient's activity),
Today's queue and a patient's page are built in the page's own process (serving/page_worker.py), never
in the scoring process, so loading the page does not slow /score down. The list is built at start-up and
then answered from its last build while that is younger than `Hardening.overview_cache_s`, even if
decisions were logged since (the reply's `built_at` says when the log was read): a list is at most that
many seconds behind the log. Patient identifiers travel in request bodies, not URLs, so access logs carry none.
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
from .page_jobs import Overview, OverviewJob, PatientJob, TodayJob
from .page_worker import PageWorker, PageWorkFailed, Setup, cause
from .ratelimit import FailureLimiter
from .sessions import Sessions, SessionsUnavailable
from .settings import Hardening, outreach_config
from .ui_data import newest_decision
from .ui_http import (SECURITY_HEADERS, _base, _body, _error, _json, _same_origin, _secure,  # noqa: F401
                      allowed_origins, login_html)
from .ui_work import WorkQueueRoutes

log = logging.getLogger("lapse.serving.ui")
STATIC = Path(__file__).resolve().parent / "static"
COOKIE = "lapse_session"
_PATIENT_ID_MAX = 128


@dataclass
class Sources:
    """The service objects the page answers from."""

    model: Callable[[], LoadedModel | None]
    engine: Callable[[], Any]  # the decision log's sqlalchemy Engine now (None while it cannot be opened)
    data_dir: str | None
    top_reasons: int


@dataclass(frozen=True)
class Snapshot:
    """The patient list as last built, for the served model version."""

    asked_at: float  # time.monotonic() when the build was asked for (it read the log after that)
    version: str | None
    body: bytes
    last_decision: int | None  # the decision log's newest row id when the list was read


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
        self.worker: PageWorker | None = None
        self._overview: Snapshot | None = None
        self._swap = threading.Lock()
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
        self.sources = Sources(model, engine, str(data_dir) if data_dir else None, top_reasons)
        self.worker = PageWorker(self._setup)
        # Starting the page's process, reading a large data folder and the first re-scoring take seconds:
        # do them now, in the background, not on the first page load after a restart.
        threading.Thread(target=self._warm, name="lapse-ui-warm", daemon=True).start()

    def stop(self) -> None:
        """End the page's process (when the service stops)."""
        if self.worker is not None:
            self.worker.stop()

    def _setup(self) -> Setup:
        """What the page's process reads from: the decision log's URL and the data folder, not open objects."""
        engine = self.sources.engine()
        if engine is None:
            raise PageWorkFailed("the decision log cannot be opened")
        return Setup(engine.url.render_as_string(hide_password=False), self.sources.data_dir, self.config,
                     self.settings.decision_log_busy_ms, self.sources.top_reasons)

    def _warm(self) -> None:
        """Build the list and Today's queue once (reading the data folder), so later loads reuse them."""
        try:
            model = self.sources.model()
            if model is not None and self.sources.engine() is not None:
                self._build(model)
                self.worker.call(TodayJob(self.policy), model)
        except Exception as error:  # noqa: BLE001 - only a head start; the first page load does it otherwise
            log.warning("clinician page: start-up read failed (%s)", cause(error))

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
        try:
            snapshot = await self._snapshot()
        except Exception as error:  # noqa: BLE001 - say what broke, never with which values
            log.warning("clinician page: list not built (%s)", cause(error))
            return _error(500, "the list could not be built")
        return _secure(Response(snapshot.body, media_type="application/json"))

    def _build(self, model: LoadedModel | None) -> Snapshot:
        """Build the list in the page's process (blocks: run it in a worker thread) and keep it."""
        asked_at = time.monotonic()
        built: Overview = self.worker.call(OverviewJob(), model)
        snapshot = Snapshot(asked_at, None if model is None else model.version, built.body, built.last_decision)
        with self._swap:
            if self._overview is None or self._overview.asked_at <= asked_at:
                self._overview = snapshot
        return snapshot

    async def _snapshot(self) -> Snapshot:
        """The list to answer with: the last build while it is younger than `overview_cache_s`, even if
        decisions were logged since; an older one is checked against the log (its newest row id): if the log
        moved on, the load waits for a new build (concurrent loads share it), otherwise it is answered from
        and rebuilt in the background (the patients' activity in the data folder may have moved on). With no
        list yet, or one for another model version, the load waits for a build."""
        model = self.sources.model()
        version = None if model is None else model.version
        checked_at = time.monotonic()
        cached = self._overview
        if cached is not None and cached.version == version:
            if checked_at - cached.asked_at < self.settings.overview_cache_s:
                return cached
            newest = await anyio.to_thread.run_sync(newest_decision, self.sources.engine())
            if newest == cached.last_decision:
                if self._refreshing.acquire(blocking=False):
                    threading.Thread(target=self._refresh, args=(model,), name="lapse-ui-refresh",
                                     daemon=True).start()
                return cached
        if self._overview_lock is None:
            self._overview_lock = anyio.Lock()
        async with self._overview_lock:
            latest = self._overview
            # A build asked for after this load's check (by a load before it) holds all it must show.
            if latest is not None and latest.version == version and latest.asked_at >= checked_at:
                return latest
            return await anyio.to_thread.run_sync(self._build, model)

    def _refresh(self, model: LoadedModel | None) -> None:
        try:
            self._build(model)
        except Exception as error:  # noqa: BLE001 - the previous list keeps answering
            log.warning("clinician page: list not refreshed (%s)", cause(error))
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
        try:
            view = await anyio.to_thread.run_sync(self.worker.call, PatientJob(patient_id), self.sources.model())
        except Exception as error:  # noqa: BLE001 - say what broke, never with which values
            log.warning("clinician page: patient view failed (%s)", cause(error))
            return _error(500, "the patient could not be shown")
        if view is None:
            return _error(404, "no score has been recorded for this patient")
        return _secure(Response(view, media_type="application/json"))

    async def model_card(self, request: Request) -> Response:
        refused = await self._gate(request)
        if refused is not None:
            return refused
        model = self.sources.model()
        if model is None:
            return _error(503, "no model is being served yet; try again shortly")
        return _json(await anyio.to_thread.run_sync(model_card_view, model))
