"""Connection limits in front of the HTTP parser: a header deadline, an idle deadline and a cap.

BentoML starts uvicorn itself and passes neither a header timeout nor a connection limit (uvicorn
has no header timeout at all: a connection that never finishes its headers stays open for ever).
`GuardedHttpToolsProtocol` (the one used) is uvicorn's httptools protocol, and `GuardedH11Protocol`
(`--http h11`) uvicorn's pure-Python h11 one, with these additions:

- a connection must deliver a request's complete headers within `header_timeout_s` of opening, or of
  its previous answer, else it is closed (this also ends idle keep-alive connections);
- a worker holds at most `max_connections` open connections; one more is answered
  429 Too Many Requests with Retry-After and closed at once;
- with httptools, a request's line and headers are at most 16 KiB, or 400 and the connection is closed
  (httptools has no bound; h11 refuses a head still incomplete past the same size);
- on SIGTERM uvicorn waits for requests in flight at most `drain_timeout_s` (BentoML leaves that
  wait unbounded and its process manager waits a day), then closes them;
- all are settings (serving/settings.py `Hardening`), installed with `install()` before uvicorn
  loads its configuration (the service module calls it when the worker imports it).
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any, ClassVar

import uvicorn.config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import Hardening

_H11 = f"{__name__}:GuardedH11Protocol"
_HTTPTOOLS = f"{__name__}:GuardedHttpToolsProtocol"
# A request's line and headers together, at most (h11 refuses a head still incomplete past this size, its
# DEFAULT_MAX_INCOMPLETE_EVENT_SIZE).
MAX_HEAD_BYTES = 16 * 1024


def busy_response(retry_after_s: int) -> bytes:
    """The whole HTTP reply to a connection over the cap."""
    body = b'{"error": "the service has too many open connections; try again shortly"}'
    return (b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nretry-after: {int(retry_after_s)}\r\n".encode()
            + b"connection: close\r\n\r\n" + body)


class _Guarded:
    """The additions, for either of uvicorn's HTTP/1.1 protocols (their connection state has the same names)."""

    settings: ClassVar[Hardening] = Hardening()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        # The connection's own context variables, without any request's (see on_response_complete).
        self._context = contextvars.copy_context()
        # The server's own config object: BentoML cannot pass a graceful-shutdown bound, so it is set here.
        if self.config.timeout_graceful_shutdown is None:
            self.config.timeout_graceful_shutdown = max(int(self.settings.drain_timeout_s), 1)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.settings.max_connections:
            transport.write(busy_response(self.settings.retry_after_s))
            transport.close()
            return
        self._arm()

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(self.settings.header_timeout_s, self._headers_late)

    def _headers_late(self) -> None:
        self._deadline = None
        # A request whose headers arrived is being answered: its own timeout applies, not this one.
        if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
            self.transport.close()

    def on_response_complete(self) -> None:
        # Called from inside the request's task, whose context variables hold the request (BentoML keeps it in
        # one). A timer set there (uvicorn's keep-alive, this header deadline) keeps that context, and with it
        # the whole request, in the event loop's timer queue until its time comes, even once cancelled: a
        # 1,000-patient body stayed in memory for ten seconds, and some hundred of them made every full garbage
        # collection long. So the end of a response is handled in the connection's own context.
        self._context.copy().run(self._response_complete)

    def _response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().connection_lost(exc)


class GuardedH11Protocol(_Guarded, H11Protocol):
    """uvicorn's h11 protocol (pure Python) with a header deadline and a cap on open connections."""


class HeadTooLarge(Exception):
    """A request line and headers over MAX_HEAD_BYTES (uvicorn answers 400 and closes the connection)."""


class GuardedHttpToolsProtocol(_Guarded, HttpToolsProtocol):
    """uvicorn's httptools protocol (a C parser) with the same additions, and a bound on a request's line and
    headers, which httptools does not have."""

    def on_message_begin(self) -> None:
        self._head_bytes = 0
        super().on_message_begin()

    def _count(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise HeadTooLarge  # out of the parser as an HttpParserError: uvicorn answers 400 and closes

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)


def install(settings: Hardening) -> None:
    """Make uvicorn in this process use the guarded protocols with `settings` (before it loads its config): the
    httptools one by default (a C parser, much cheaper per request than h11), h11's when asked for."""
    _Guarded.settings = settings
    uvicorn.config.HTTP_PROTOCOLS["auto"] = _HTTPTOOLS
    uvicorn.config.HTTP_PROTOCOLS["httptools"] = _HTTPTOOLS
    uvicorn.config.HTTP_PROTOCOLS["h11"] = _H11
