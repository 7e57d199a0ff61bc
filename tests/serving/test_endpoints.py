"""The scoring endpoints' own middleware (serving/endpoints.py): what reaches the endpoint and what comes back."""

from __future__ import annotations

import asyncio
import json
import logging

from pydantic import BaseModel
from starlette.responses import Response

from serving.endpoints import FAILED, Endpoints
from serving.guard import VALIDATED
from serving.logging import install_redaction


class Request(BaseModel):
    patients: list[str]
    capacity: int = 3


class Answer(BaseModel):
    contacted: list[str]


class _Declared:
    """What BentoML's `@bentoml.api` leaves on the class: the undecorated function as `.func`."""

    def __init__(self, func):
        self.func = func


class Service:
    def __init__(self) -> None:
        self.calls: list[dict] = []

    async def _triage(self, patients: list[str], capacity: int) -> Response:
        self.calls.append({"patients": patients, "capacity": capacity})
        return Response(json.dumps({"contact": patients[:capacity]}).encode(), media_type="application/json")

    async def _modelled(self, patients: list[str], capacity: int) -> Answer:
        return Answer(contacted=patients[:1])

    async def _broken(self, patients: list[str], capacity: int) -> Response:
        raise ValueError(f"cannot score {patients[0]}")

    triage = _Declared(_triage)
    modelled = _Declared(_modelled)
    broken = _Declared(_broken)


def _call(middleware: Endpoints, path: str, method: str = "POST", validated: BaseModel | None = None):
    scope = {"type": "http", "path": path, "method": method, "headers": []}
    if validated is not None:
        scope[VALIDATED] = validated
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return status, json.loads(body)


def _inner(answered: list[str]):
    async def app(scope, receive, send):
        answered.append(scope["path"])
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": b'{"by": "bentoml"}'})

    return app


ROUTES = {"/triage": "triage", "/modelled": "modelled", "/broken": "broken"}


def test_a_validated_request_is_answered_by_the_endpoint_with_the_models_fields():
    service, passed = Service(), []
    middleware = Endpoints(_inner(passed), service=lambda: service, routes=ROUTES)
    status, body = _call(middleware, "/triage", validated=Request(patients=["a", "b", "c"], capacity=2))
    assert (status, body) == (200, {"contact": ["a", "b"]})
    assert service.calls == [{"patients": ["a", "b", "c"], "capacity": 2}]
    assert passed == []
    # A pydantic answer is sent as its JSON.
    assert _call(middleware, "/modelled", validated=Request(patients=["x", "y"])) == (200, {"contacted": ["x"]})


def test_everything_the_guard_did_not_validate_goes_on_to_bentoml():
    service, passed = Service(), []
    middleware = Endpoints(_inner(passed), service=lambda: service, routes=ROUTES)
    assert _call(middleware, "/triage") == (200, {"by": "bentoml"})  # nothing validated
    assert _call(middleware, "/triage", method="GET", validated=Request(patients=["a"])) == (200, {"by": "bentoml"})
    assert _call(middleware, "/outcomes", validated=Request(patients=["a"])) == (200, {"by": "bentoml"})
    # Before the service has started, BentoML answers (it refuses requests until then).
    waiting = Endpoints(_inner(passed), service=lambda: None, routes=ROUTES)
    assert _call(waiting, "/triage", validated=Request(patients=["a"])) == (200, {"by": "bentoml"})
    assert passed == ["/triage", "/triage", "/outcomes", "/triage"]
    assert service.calls == []


def test_a_failing_endpoint_is_a_json_500_and_its_log_line_has_no_values(caplog):
    install_redaction()
    service = Service()
    middleware = Endpoints(_inner([]), service=lambda: service, routes=ROUTES)
    with caplog.at_level(logging.ERROR, logger="lapse.serving.endpoints"):
        status, body = _call(middleware, "/broken", validated=Request(patients=["patient-7731"]))
    assert (status, body) == (500, FAILED)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in logged and "/broken" in logged
    assert "patient-7731" not in logged and "patient-7731" not in caplog.text
