"""The outermost middleware (serving/edge.py): what every reply gets, whatever happened below it."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from serving.edge import Edge
from serving.endpoints import FAILED
from serving.logging import install_redaction


@pytest.fixture(scope="module")
def edge() -> Edge:
    """One Edge for the module (its route metrics register once per process, as in a server's worker); each
    test puts its own app below it."""
    install_redaction()
    return Edge(lambda scope, receive, send: None, keys=None, metrics_key="")


def _call(app, path: str = "/score") -> tuple[int, dict[bytes, bytes], bytes]:
    scope = {"type": "http", "path": path, "raw_path": path.encode(), "method": "POST",
             "headers": [(b"x-request-id", b"caller-id-1")], "patient": "patient-5521"}
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), body


def test_a_failure_below_before_any_reply_is_a_json_500_with_the_request_id_and_a_log_line_without_values(edge,
                                                                                                          caplog):
    async def failing(scope, receive, send):
        raise KeyError(scope["patient"])  # the traceback's source line names no value: its message would

    edge.app = failing
    with caplog.at_level(logging.ERROR, logger="lapse.serving.edge"):
        status, headers, body = _call(edge)
    assert status == 500 and json.loads(body) == FAILED
    assert headers[b"content-type"] == b"application/json" and headers[b"x-request-id"] == b"caller-id-1"
    assert headers[b"cache-control"] == b"no-store"
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "KeyError" in logged and "/score" in logged
    assert "patient-5521" not in logged and "patient-5521" not in caplog.text


def test_a_failure_after_the_reply_started_is_not_answered_twice(edge, caplog):
    async def half(scope, receive, send):
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        raise RuntimeError(scope["patient"])

    edge.app = half
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "path": "/score", "raw_path": b"/score", "method": "POST", "headers": [],
             "patient": "patient-8812"}
    with caplog.at_level(logging.ERROR, logger="lapse.serving.edge"):
        try:
            asyncio.run(edge(scope, receive, send))
        except RuntimeError:
            pass
        else:
            raise AssertionError("the failure must reach the server, which closes the connection")
    assert [m["type"] for m in sent] == ["http.response.start"]
    assert "patient-8812" not in caplog.text
