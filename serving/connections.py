"""Connection limits in front of the HTTP parser: a header deadline, an idle deadline and a cap.

BentoML starts uvicorn itself and passes neither a header timeout nor a connection limit (uvicorn
has no header timeout at all: a connection that never finishes its headers stays open for ever).
`GuardedH11Protocol` is uvicorn's h11 protocol with three additions:

- a connection must deliver a request's complete headers within `header_timeout_s` of opening, or of
  its previous answer, else it is closed (this also ends idle keep-alive connections);
- a worker holds at most `max_connections` open connections; one more is answered
  429 Too Many Requests with Retry-After and closed at once;
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

from .settings import Hardening

_PROTOCOL = f"{__name__}:GuardedH11Protocol"


def busy_response(retry_after_s: int) -> bytes:
    """The whole HTTP reply to a connection over the cap."""
    body = b'{"error": "the service has too many open connections; try again shortly"}'
    return (b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n"
            + f"content-length: {len(body)}\r\nretry-after: {int(retry_after_s)}\r\n".encode()
            + b"connection: close\r\n\r\n" + body)


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with a header deadline and a cap on open connections."""

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


def install(settings: Hardening) -> None:
    """Make uvicorn in this process use the guarded protocol with `settings` (before it loads its config)."""
    GuardedH11Protocol.settings = settings
    uvicorn.config.HTTP_PROTOCOLS["auto"] = _PROTOCOL
    uvicorn.config.HTTP_PROTOCOLS["h11"] = _PROTOCOL
