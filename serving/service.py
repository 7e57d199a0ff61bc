"""The BentoML risk service: one method per endpoint; the work is done by plain functions in scoring.py.

Start it with `lapse serve` (or `bentoml serve serving.service:RiskService`). Requests pass
the RequestGuard first (API keys, body size, input rules); every answered decision is committed
to the decision log before the reply is sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime, timezone
from functools import partial
from typing import Any, Literal

import anyio.to_thread
import bentoml
from fastapi import FastAPI
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from config import DEFAULT_PATHS
from models.loaded import LoadedModel
from outreach.outcomes import Outcome

from . import connections, outcomes_api, scoring
from .app_metrics import app_metrics
from .decision_log import Decision, DecisionLog, DecisionLogError
from .decisions_api import QueryProblems, parse_query, read_page
from .edge import Edge
from .endpoints import Endpoints
from .guard import RequestGuard, validated_input
from .idempotency import Idempotency, RequestAbandoned, current_claim
from .inputs import InputProblems
from .logging import install_redaction, install_thread_hook
from .model_store import ModelStore
from .policy import ServicePolicy, decide_scores, decide_triage
from .request_ids import current_request_id
from .schemas import (
    DecisionPage,
    Explanation,
    ExplainRequest,
    ModelCard,
    ModelRef,
    OutcomesRequest,
    OutcomesResponse,
    PatientIn,
    ReloadRequest,
    ReloadResult,
    ScoreRequest,
    ScoreResponse,
    TriageRequest,
    TriageResponse,
)
from .settings import clinician_page_config, decision_log_url, hardening, outreach_config, serving_config
from .ui import ClinicianPage
from .webhook import Delivery, Webhook

CONFIG = serving_config()
HARDENING = hardening()
# uvicorn is started by BentoML after this module is imported: its connections get a header deadline
# and a cap from here on (serving/connections.py).
connections.install(HARDENING)
# Requests with more patients than this, or with more raw events in all, are scored in a worker thread
# (a few patients' events take the array path, about a millisecond per few hundred events).
_INLINE_PATIENTS = 32
_INLINE_EVENTS = 1000
OPEN_PATHS = frozenset({"/", "/livez", "/healthz", "/readyz", "/metrics", "/docs.json", "/schema.json"})
# The clinician page checks its own sign-in session (serving/ui.py).
OPEN_PREFIXES = ("/ui/",)
ADMIN_PATHS = frozenset({"/admin/reload"})
card_app = FastAPI(title="lapse model card", docs_url=None, redoc_url=None, openapi_url=None)
clinician_page = ClinicianPage(clinician_page_config(), settings=HARDENING)
Work = Callable[[LoadedModel, datetime], tuple[scoring.Answer, list[Decision]]]


# This worker's service instance, once it has started: the edge reads its decision log's health (/readyz) and
# its model's tier names (/docs.json), and the scoring endpoints are answered with it (serving/endpoints.py).
_RUNNING: list["RiskService"] = []


def _running() -> Any:
    return _RUNNING[0] if _RUNNING else None


def _tier_names() -> tuple[str, ...]:
    model = _RUNNING[0].store.current if _RUNNING else None
    return tuple(name for name, _ in model.tiers) if model is not None else ()


def _problem() -> str | None:
    """Why this worker cannot answer now, or None."""
    return _RUNNING[0].decision_log.problem if _RUNNING else None


def _unavailable(message: str) -> JSONResponse:
    return JSONResponse(status_code=503, content={"error": message}, headers={"retry-after": "5"})


def _at(i: int) -> str:
    return f"patients[{i}]"


def _seen(model: LoadedModel) -> Callable[..., None]:
    """Counts each scored matrix's feature values and missing values in the app metrics."""
    return lambda X: app_metrics().scored_inputs(X, model.feature_names)


def _together(*steps: Callable[[Any], None] | None) -> Callable[[Any], None] | None:
    """One step (run in the decision log's transaction) doing each given step in turn; None if none is given."""
    given = [step for step in steps if step is not None]
    if len(given) <= 1:
        return given[0] if given else None

    def each(connection: Any) -> None:
        for step in given:
            step(connection)

    return each


def _programs(items: list[PatientIn]) -> list[str | None]:
    """Each item's program from its profile (None when it sends features only)."""
    return [item.profile.program if item.profile is not None else None for item in items]


@bentoml.service(
    name="lapse",
    workers=CONFIG.workers,
    traffic={"timeout": CONFIG.request_timeout_s},
    # `bentoml serve` (of a Bento too) binds here unless --host says otherwise: loopback by default.
    http={"host": CONFIG.host, "port": CONFIG.port},
    # BentoML labels its request metrics by raw path (unbounded); serving/edge.py counts by route instead.
    metrics={"enabled": False, "namespace": "bentoml_service"},
    logging={"access": {"enabled": True, "request_content_length": True, "response_content_length": True}},
    # No trace exporter is configured, and building the unsampled spans costs about 0.5 ms a request.
    tracing={"excluded_urls": [r"."]},
)
@bentoml.asgi_app(card_app, path="/")
@bentoml.asgi_app(clinician_page, path="/ui")
class RiskService:
    """Dropout risk, reasons and support decisions for patients of a digital mental health program."""

    def __init__(self) -> None:
        install_redaction()
        install_thread_hook()
        self.store = ModelStore(CONFIG, DEFAULT_PATHS.tracking_uri)
        self.decision_log = DecisionLog(decision_log_url(CONFIG), CONFIG.decision_log_sync,
                                        HARDENING.decision_log_busy_ms, HARDENING.decision_log_retry_s)
        _RUNNING.append(self)  # (uvicorn answers requests only once this __init__ has returned)
        self.webhook = Webhook(CONFIG.webhook_url, CONFIG.webhook_secret, decision_log_url(CONFIG),
                               CONFIG.webhook_attempts, CONFIG.webhook_backoff_s,
                               CONFIG.webhook_timeout_s) if CONFIG.webhook_url else None
        self.policy = ServicePolicy.load(outreach_config())
        self.warm = False
        self.store.reload()
        self._warm_up()
        self.store.start_polling(CONFIG.poll_seconds)
        clinician_page.attach(lambda: self.store.current, lambda: self.decision_log.engine, CONFIG.data_dir or None,
                              CONFIG.top_reasons)

    @bentoml.on_shutdown
    def stop_page(self) -> None:
        """End the clinician page's own process with the service (it also ends when this process exits), and
        hand the webhook deliveries this worker still holds to the next worker."""
        clinician_page.stop()
        if self.webhook is not None:
            self.webhook.close()

    def _warm_up(self) -> None:
        if self.store.current is not None and not self.warm:
            scoring.warm_up(self.store.current, CONFIG.top_reasons, max(CONFIG.warmup_predictions // 4, 1))
            self.warm = True

    def __is_ready__(self) -> bool:
        return self.warm and self.store.current is not None and self.decision_log.healthy

    async def _answer(self, items: list[PatientIn], work: Work) -> Any:
        """Run `work` with the current model, commit its decisions, then send its answer."""
        model = self.store.current
        if model is None:
            return _unavailable("no model is being served yet; try again shortly")
        now = datetime.now(timezone.utc)
        claim = current_claim()

        def decide(threaded: bool) -> tuple[list[Decision], Future, bytes, Delivery | None]:
            answer, decided = work(model, now)
            # A webhook delivery for the triggered decisions is stored in their transaction (serving/webhook.py).
            delivery = self.webhook.prepare(decided) if self.webhook is not None else None
            outbox = partial(self.webhook.store, delivery) if delivery is not None else None
            if claim is None:
                # Many decisions, in a worker thread: handed to the log's writer before the answer is serialised
                # (it is sent only after their commit), SQLite inserts them without the GIL meanwhile. Not on the
                # event loop, which must not wait for the writer. (Were the answer to fail to serialise, its
                # decisions would stay logged, and the caller would get a 500.)
                committed = self.decision_log.submit(decided, outbox,
                                                     hand_over=threaded and len(decided) > _INLINE_PATIENTS)
                return decided, committed, scoring.answer_json(answer), delivery
            # With an Idempotency-Key, the answer is serialised first: it is stored with the decisions, in their
            # transaction.
            body = scoring.answer_json(answer)
            committed = claim.hand(body, lambda within: self.decision_log.submit(decided, _together(within, outbox)))
            if committed is None:
                raise RequestAbandoned
            return decided, committed, body, delivery

        try:
            if len(items) > _INLINE_PATIENTS or sum(len(item.events or ()) for item in items) > _INLINE_EVENTS:
                decided, committed, body, delivery = await anyio.to_thread.run_sync(decide, True)
            else:
                decided, committed, body, delivery = decide(False)
        except InputProblems as error:
            return JSONResponse(status_code=422, content={"error": "the request breaks the rules below",
                                                          "problems": error.problems})
        try:
            await asyncio.wrap_future(committed)
        except DecisionLogError:
            return _unavailable("the decision could not be recorded, so no answer is given; try again")
        return Response(body, media_type="application/json",
                        background=BackgroundTask(self._after, decided, delivery))

    async def _after(self, decided: list[Decision], delivery: Delivery | None) -> None:
        """Once the reply is sent: count the decisions in the metrics and send the webhook's delivery (stored with
        the decisions: if this never runs, another worker's sweep sends it)."""
        app_metrics().decided(decided)
        if delivery is not None:
            self.webhook.start(delivery)

    @bentoml.api(route="/score", input_spec=validated_input(ScoreRequest))
    async def score(self, patients: list[PatientIn], feature_names: list[str] | None = None) -> ScoreResponse:
        """Risk, tier, top reasons and the support decision for each patient (in request order)."""

        def work(model: LoadedModel, now: datetime):
            scores = scoring.score_patients(patients, model, now, CONFIG.top_reasons, _at, _seen(model),
                                            feature_names)
            scores, chosen = decide_scores(scores, self.policy, model)
            decided = scoring.decisions(current_request_id(), "score", scores, programs=_programs(patients),
                                        policy=chosen)
            return scoring.ScoreAnswer(scores), decided

        return await self._answer(patients, work)

    @bentoml.api(route="/explain", input_spec=validated_input(ExplainRequest))
    async def explain(self, patient: PatientIn, feature_names: list[str] | None = None) -> Explanation:
        """Every feature's contribution to one patient's score, also summed by engagement level."""

        def work(model: LoadedModel, now: datetime):
            explained = scoring.explain_patient(patient, model, now, lambda i: "patient", feature_names)
            return explained, scoring.decisions(current_request_id(), "explain", [explained], None, CONFIG.top_reasons,
                                                 _programs([patient]))

        return await self._answer([patient], work)

    @bentoml.api(route="/triage", input_spec=validated_input(TriageRequest))
    async def triage(self, patients: list[PatientIn], capacity: int, policy: Literal["risk", "benefit"] | None = None,
                     feature_names: list[str] | None = None) -> TriageResponse:
        """The day's list: at most `capacity` patients to contact, best first under the trigger policy."""

        def work(model: LoadedModel, now: datetime):
            scores = scoring.score_patients(patients, model, now, CONFIG.top_reasons, _at, _seen(model),
                                            feature_names)
            day = decide_triage(scores, [p.coach for p in patients], capacity, policy, self.policy, model)
            chosen = scoring.TriageAnswer([day.scores[i] for i in day.contact], len(scores), capacity, day.ranked_by,
                                          day.note)
            decided = scoring.decisions(current_request_id(), "triage", day.scores, set(day.contact),
                                        programs=_programs(patients), policy=day.decisions)
            return chosen, decided

        return await self._answer(patients, work)

    @bentoml.api(route="/outcomes", input_spec=validated_input(OutcomesRequest))
    async def outcomes(self, outcomes: list[Outcome]) -> OutcomesResponse:
        """Record what came of support decisions, next to the decision log; idempotent by outcome_id."""
        return await anyio.to_thread.run_sync(outcomes_api.record, outcomes, decision_log_url(CONFIG))

    @bentoml.api(route="/admin/reload", input_spec=validated_input(ReloadRequest))
    async def reload(self) -> ReloadResult:
        """Serve the version the registry alias points at now (admin key); a broken version is refused (409)."""
        outcome = await anyio.to_thread.run_sync(self.store.reload)
        await anyio.to_thread.run_sync(self._warm_up)
        model = self.store.current
        result = ReloadResult(outcome=outcome.outcome, detail=outcome.detail,
                              serving=ModelRef(name=CONFIG.model_name, version=model.version if model else "none"))
        if outcome.outcome == "refused":
            return JSONResponse(status_code=409, content=result.model_dump())
        return result

    @card_app.get("/model", response_model=ModelCard)
    def model_card(self) -> ModelCard:
        """What the served model is: version, training window, metrics, thresholds and features."""
        model = self.store.current
        if model is None:
            return _unavailable("no model is being served yet; try again shortly")
        return scoring.model_card(model)

    @card_app.get("/decisions", response_model=DecisionPage)
    def decisions(self, request: Request) -> DecisionPage:
        """Logged decisions, oldest first: filter by patient_id, since, until; page with cursor and limit."""
        try:
            query = parse_query(list(request.query_params.multi_items()))
        except QueryProblems as error:
            return JSONResponse(status_code=422, content={"error": "the query breaks the rules below",
                                                          "problems": error.problems})
        engine = self.decision_log.engine
        if engine is None or not self.decision_log.healthy:
            return _unavailable("the decision log cannot be read now; try again shortly")
        return read_page(engine, query)


# Added first, so it runs before the guard: every reply, refusals included, gets its headers and metrics.
RiskService.add_asgi_middleware(Edge, problem=_problem, tiers=_tier_names)
RiskService.add_asgi_middleware(
    RequestGuard,
    models={"/score": ScoreRequest, "/explain": ExplainRequest, "/triage": TriageRequest,
            "/admin/reload": ReloadRequest, "/outcomes": OutcomesRequest},
    admin_paths=ADMIN_PATHS,
    open_paths=OPEN_PATHS | {"/ui"},
    open_prefixes=OPEN_PREFIXES,
    max_body_bytes=CONFIG.max_body_bytes,
    settings=HARDENING,
)
# Inside the guard: keys are checked and bodies validated before a key is looked up.
RiskService.add_asgi_middleware(Idempotency, url=decision_log_url(CONFIG),
                                paths=frozenset({"/score", "/explain", "/triage"}),
                                ttl_hours=CONFIG.idempotency_ttl_hours,
                                # Longer than any commit can take: a claim pending longer was left by a failed one.
                                pending_stale_s=CONFIG.request_timeout_s + HARDENING.decision_log_busy_ms / 1000 + 60)
# Innermost: a validated request to a scoring endpoint is answered by its method here, without BentoML's wrapper.
RiskService.add_asgi_middleware(Endpoints, service=_running,
                                routes={"/score": "score", "/explain": "explain", "/triage": "triage"})
