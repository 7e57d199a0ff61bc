"""The connection layer under uvicorn (serving/connections.py), with a real server on loopback."""

from __future__ import annotations

import contextvars
import gc
import http.client
import threading
import time
import weakref

import socket

import pytest
import uvicorn

from serving.connections import MAX_HEAD_BYTES, GuardedH11Protocol, GuardedHttpToolsProtocol
from serving.launcher import free_port

PROTOCOLS = pytest.mark.parametrize("protocol", [GuardedHttpToolsProtocol, GuardedH11Protocol],
                                    ids=["httptools", "h11"])

# BentoML keeps the request in a context variable; this stands for it.
REQUEST: contextvars.ContextVar[object] = contextvars.ContextVar("request")


class Body:
    """Stands for a parsed request body (a 1,000-patient batch is megabytes of objects)."""


def serve(app, protocol=GuardedHttpToolsProtocol) -> tuple[uvicorn.Server, threading.Thread, int]:
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, http=protocol, lifespan="off",
                            log_level="warning", timeout_keep_alive=30)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the test server did not start"
        time.sleep(0.02)
    return server, thread, port


@PROTOCOLS
def test_a_finished_request_is_not_kept_in_memory_by_its_connection(protocol):
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

    server, thread, port = serve(app, protocol)
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


def _exchange(port: int, request: bytes) -> bytes:
    """Send raw bytes, then read until the server closes the connection (or 5 s pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):  # closed while still sending: read what it answered
            pass
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionResetError):
            pass
        return b"".join(chunks)


def test_request_heads_over_the_bound_are_refused_and_others_answered(protocol=GuardedHttpToolsProtocol):
    """httptools has no bound of its own on a request's line and headers: without one, a client could send
    megabytes of headers for as long as the header deadline lets it (h11 refuses a head that is still
    incomplete past the same size)."""
    answered: list[int] = []

    async def app(scope, receive, send):
        answered.append(len(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})

    server, thread, port = serve(app, protocol)
    try:
        filler = b"".join(b"x-filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(MAX_HEAD_BYTES // 1000 + 2))
        refused = _exchange(port, b"GET / HTTP/1.1\r\nhost: x\r\n" + filler + b"\r\n")
        assert refused.startswith(b"HTTP/1.1 400 "), refused[:80]
        long_url = _exchange(port, b"GET /" + b"a" * (MAX_HEAD_BYTES + 10) + b" HTTP/1.1\r\nhost: x\r\n\r\n")
        assert long_url.startswith(b"HTTP/1.1 400 "), long_url[:80]
        assert answered == []
        # Under the bound, on one keep-alive connection, headers and all: answered, each time.
        near = b"".join(b"x-filler-%d: %s\r\n" % (i, b"a" * 1000) for i in range(MAX_HEAD_BYTES // 1000 - 2))
        both = _exchange(port, (b"GET / HTTP/1.1\r\nhost: x\r\n" + near + b"\r\n") * 2
                         + b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        assert both.count(b"HTTP/1.1 200 ") == 3, both[:200]
        assert answered == [len(near.splitlines()) + 1] * 2 + [2]
    finally:
        server.should_exit = True
        thread.join(timeout=10)
