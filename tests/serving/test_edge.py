"""The outermost middleware (serving/edge.py): what every reply gets, whatever happened below it."""

from __future__ import annotations

import asyncio
import logging

import httpx
import pytest

from serving.edge import Edge
from serving.endpoints import FAILED
from serving.logging import install_redaction

# Sent as a header; the apps below fail with it as their message (their source lines name no value).
PATIENT = "patient-5521"


@pytest.fixture(scope="module")
def edge() -> Edge:
    """One Edge for the module (its route metrics register once per process, as in a server's worker); each
    test puts its own app below it."""
    install_redaction()
    return Edge(lambda scope, receive, send: None, keys=None, metrics_key="")


def _post(edge: Edge, raise_app_exceptions: bool = True) -> httpx.Response:
    async def post() -> httpx.Response:
        transport = httpx.ASGITransport(app=edge, raise_app_exceptions=raise_app_exceptions)
        async with httpx.AsyncClient(transport=transport, base_url="http://lapse") as client:
            return await client.post("/score", headers={"X-Request-ID": "caller-id-1", "X-Patient": PATIENT})

    return asyncio.run(post())


def _patient(scope) -> str:
    return dict(scope["headers"])[b"x-patient"].decode()


def test_a_failure_below_before_any_reply_is_a_json_500_with_the_request_id_and_a_log_line_without_values(edge,
                                                                                                          caplog):
    async def failing(scope, receive, send):
        raise KeyError(_patient(scope))

    edge.app = failing
    with caplog.at_level(logging.ERROR, logger="lapse.serving.edge"):
        reply = _post(edge)
    assert reply.status_code == 500 and reply.json() == FAILED
    assert reply.headers["content-type"] == "application/json" and reply.headers["x-request-id"] == "caller-id-1"
    assert reply.headers["cache-control"] == "no-store"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "KeyError" in logged and "/score" in logged
    assert PATIENT not in logged and PATIENT not in caplog.text


def test_a_failure_after_the_reply_started_is_not_answered_twice(edge, caplog):
    async def half(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        raise RuntimeError(_patient(scope))

    edge.app = half
    with caplog.at_level(logging.ERROR, logger="lapse.serving.edge"), pytest.raises(RuntimeError):
        _post(edge)  # the failure reaches the server, which closes the connection: no second reply
    assert "RuntimeError" in caplog.text and PATIENT not in caplog.text
