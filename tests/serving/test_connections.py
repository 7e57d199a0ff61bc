"""The connection layer under uvicorn (serving/connections.py), with a real server on loopback."""

from __future__ import annotations

import contextvars
import gc
import http.client
import threading
import time
import weakref

import uvicorn

from serving.connections import GuardedH11Protocol
from serving.launcher import free_port

# BentoML keeps the request in a context variable; this stands for it.
REQUEST: contextvars.ContextVar[object] = contextvars.ContextVar("request")


class Body:
    """Stands for a parsed request body (a 1,000-patient batch is megabytes of objects)."""


def serve(app) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=GuardedH11Protocol, lifespan="off",
                            log_level="warning", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    return server, thread, port


def test_a_finished_request_is_not_kept_in_memory_by_its_connection():
    """Keep-alive and header timers set at the end of a response once kept the request's context (and with it
    the whole request) in the event loop until they ran out, ten seconds and more, even after being cancelled."""
    bodies: list[weakref.ref] = []

    async def app(scope, receive, send):
        body = Body()
        REQUEST.set(body)
        bodies.append(weakref.ref(body))
        del body
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    server, thread, port = serve(app)
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(4):
            connection.request("GET", "/")
            response = connection.getresponse()
            assert response.status == 200 and response.read() == b"ok"
        time.sleep(0.3)  # the last request's task ends after its reply is read
        gc.collect()  # only what is still reachable counts, not garbage waiting for a collection
        assert len(bodies) == 4
        assert [ref() is None for ref in bodies] == [True] * 4
        connection.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
