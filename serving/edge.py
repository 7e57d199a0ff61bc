"""The outermost of lapse's middlewares: security headers, metrics by route, the index page, readiness.

- Every reply gets security headers (a CSP, nosniff, frame-ancestors 'none', no referrer leaks) and
  `Cache-Control: no-store` (answers carry patient data; nothing here is worth caching).
- Request counts and durations are labelled by route template, never by the requested path: an
  unknown path is counted as "other", so random paths cannot grow the metrics without bound.
  `GET /metrics` needs the admin key or the metrics key (LAPSE_METRICS_KEY).
- `/` is a local page without scripts (BentoML's index loads Google Tag Manager and a Swagger UI
  from a CDN; its assets are not served). The OpenAPI document stays at /docs.json.
- `GET /readyz` answers 503 with the reason while the decision log cannot be written.
- Every reply carries `X-Request-ID` (serving/request_ids.py) and `API-Version`; `/v1/<path>` is answered
  as `/<path>` (the API version in the path; today's unversioned paths keep working).
- A 404 or 405 from anywhere below is answered as JSON `{"error": ...}` (Starlette's are plain text), and
  so is a failure below that has not started its reply (500, its traceback logged without messages).
- `/docs.json` is BentoML's spec corrected by serving/openapi.py (title, version, security, statuses).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
from collections.abc import Callable, Sequence
from hashlib import sha256
from typing import Any

from . import openapi, request_ids
from .app_metrics import LEFT_OUT, app_metrics
from .auth import KeyRing, bearer_token
from .endpoints import FAILED
from .guard import Receive, Scope, Send
from .logging import redacted_traceback

METRICS_KEY_ENV = "LAPSE_METRICS_KEY"
API_HEADERS = {
    b"content-security-policy": b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    b"x-content-type-options": b"nosniff",
    b"x-frame-options": b"DENY",
    b"referrer-policy": b"no-referrer",
    b"cache-control": b"no-store",
    b"cross-origin-resource-policy": b"same-origin",
}
ROUTES = ("/score", "/explain", "/triage", "/admin/reload", "/model", "/decisions", "/livez", "/healthz", "/readyz",
          "/metrics", "/", "/docs.json", "/schema.json", "/ui/", "/ui/login", "/ui/logout", "/ui/api/overview",
          "/ui/api/patient", "/ui/api/model")
BLOCKED_PREFIXES = ("/static_content/", "/assets/")
VERSION_PREFIX = "/v" + openapi.API_VERSION
FAILED_BODY = json.dumps(FAILED).encode()
log = logging.getLogger("lapse.serving.edge")
_PLAIN_ERRORS = {404: b'{"error": "not found"}', 405: b'{"error": "this method is not allowed here"}'}
INDEX = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>lapse risk service</title></head>
<body><h1>lapse risk service</h1>
<p>Dropout risk, reasons and support decisions over HTTP. Every call needs an API key
(<code>Authorization: Bearer &lt;key&gt;</code>).</p>
<ul><li><a href="/docs.json">OpenAPI document (JSON)</a></li><li><a href="/ui/">Clinician page</a></li></ul>
</body></html>
"""


def route_of(path: str) -> str:
    """The route template a path belongs to; "other" for any path the service does not answer."""
    if path in ROUTES:
        return path
    if path == "/ui":
        return "/ui/"
    if path.startswith("/ui/static/"):
        return "/ui/static/{file}"
    return "other"


class RouteMetrics:
    """Request counters and durations by route template, in BentoML's (multi-process) registry."""

    def __init__(self) -> None:
        from bentoml._internal.container import BentoMLContainer

        self.client = BentoMLContainer.metrics_client.get()
        self.requests = self.client.Counter(name="lapse_http_requests_total", documentation="HTTP requests answered",
                                            labelnames=["route", "method", "status"])
        self.seconds = self.client.Histogram(name="lapse_http_request_duration_seconds",
                                             documentation="time to answer, by route",
                                             labelnames=["route", "method"])

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        method = method if method in ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS") else "other"
        self.requests.labels(route=route, method=method, status=str(status)).inc()
        self.seconds.labels(route=route, method=method).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        return self.client.generate_latest(), self.client.CONTENT_TYPE_LATEST


async def _reply(send: Send, status: int, body: bytes, content_type: bytes,
                 extra: list[tuple[bytes, bytes]] = ()) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *extra]})
    await send({"type": "http.response.body", "body": body})


class Edge:
    """ASGI middleware: headers on every reply, route metrics, /metrics behind a key, index, readiness."""

    def __init__(self, app: Callable[..., Any], *, problem: Callable[[], str | None] = lambda: None,
                 keys: KeyRing | None = None, metrics_key: str | None = None,
                 tiers: Callable[[], Sequence[str]] = tuple) -> None:
        self.app = app
        self.problem = problem
        self.tiers = tiers
        self._spec: tuple[tuple[str, ...], bytes] | None = None
        self.keys = keys if keys is not None else KeyRing.from_env()
        key = metrics_key if metrics_key is not None else os.environ.get(METRICS_KEY_ENV, "").strip()
        self.metrics_key = sha256(key.encode()).digest() if key else None
        self._metrics: RouteMetrics | None = None

    @property
    def metrics(self) -> RouteMetrics:
        if self._metrics is None:  # made on first use: BentoML's registry exists only inside the server
            self._metrics = RouteMetrics()
        return self._metrics

    def _may_scrape(self, scope: Scope) -> bool:
        token = None
        for name, value in scope.get("headers", []):
            if name.lower() == b"authorization":
                token = bearer_token(value.decode("latin-1"))
        if not token:
            return False
        if self.metrics_key is not None and hmac.compare_digest(sha256(token.encode()).digest(), self.metrics_key):
            return True
        return self.keys.is_admin(token)

    async def _own(self, scope: Scope, send: Send) -> bool:
        """Answer the requests the edge serves itself; False for everything else."""
        path, method = scope["path"], scope.get("method", "GET")
        if path.startswith(BLOCKED_PREFIXES):
            await _reply(send, 404, b'{"error": "not found"}', b"application/json")
        elif path == "/" and method in ("GET", "HEAD"):
            await _reply(send, 200, INDEX, b"text/html; charset=utf-8")
        elif path == "/metrics":
            if not self._may_scrape(scope):
                await _reply(send, 401, b'{"error": "metrics need the admin or metrics key"}', b"application/json",
                             [(b"www-authenticate", b'Bearer realm="lapse"')])
            else:
                body, kind = self.metrics.render()
                await _reply(send, 200, body, kind.encode())
        elif path == "/docs.json" and method in ("GET", "HEAD"):
            await _reply(send, 200, await self._spec_json(scope), b"application/json")
        elif path == "/readyz" and (reason := self.problem()) is not None:
            await _reply(send, 503, json.dumps({"error": reason}).encode(), b"application/json",
                         [(b"retry-after", b"5")])
        else:
            return False
        return True

    async def _spec_json(self, scope: Scope) -> bytes:
        """BentoML's spec, corrected by serving/openapi.py (made once per set of tier names)."""
        tiers = tuple(self.tiers())
        if self._spec is None or self._spec[0] != tiers:
            chunks: list[bytes] = []

            async def capture(message: dict[str, Any]) -> None:
                if message["type"] == "http.response.body":
                    chunks.append(message.get("body", b""))

            async def nothing() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            await self.app({**scope, "method": "GET"}, nothing, capture)
            generated = json.loads(b"".join(chunks))
            self._spec = (tiers, json.dumps(openapi.patch(generated, tiers)).encode())
        return self._spec[1]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        sent = None
        for name, value in scope.get("headers", []):
            if name.lower() == request_ids.HEADER:
                sent = value.decode("latin-1")
        stamp = [(request_ids.HEADER, request_ids.begin(sent).encode()), (b"api-version", openapi.API_VERSION.encode())]
        path = scope["path"]
        if path.startswith(VERSION_PREFIX + "/"):
            path = path[len(VERSION_PREFIX):]
            scope = {**scope, "path": path, "raw_path": path.encode()}
        replaced: bytes | None = None
        started_reply = False

        async def secured(message: dict[str, Any]) -> None:
            nonlocal status, replaced, started_reply
            if message["type"] == "http.response.start":
                started_reply = True
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                if status in _PLAIN_ERRORS and b"application/json" not in dict(
                        (k.lower(), v) for k, v in headers).get(b"content-type", b""):
                    replaced = _PLAIN_ERRORS[status]
                    headers = [(k, v) for k, v in headers if k.lower() not in (b"content-type", b"content-length")]
                    headers += [(b"content-type", b"application/json"),
                                (b"content-length", str(len(replaced)).encode())]
                extra = [(k, v) for k, v in API_HEADERS.items() if k not in present]
                message = {**message, "headers": [*headers, *extra, *stamp]}
            elif message["type"] == "http.response.body" and replaced is not None:
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": replaced}
            await send(message)

        try:
            if not await self._own(scope, secured):
                await self.app(scope, receive, secured)
        except Exception as error:
            # A failure below (a middleware, not an endpoint: serving/endpoints.py answers those) would otherwise
            # leave the client waiting for a reply that never comes, and nothing in the log.
            log.error("%s %s failed: %s", scope.get("method"), route_of(path), redacted_traceback(error))
            if started_reply:
                raise
            status = 500
            await secured({"type": "http.response.start", "status": 500,
                           "headers": [(b"content-type", b"application/json"),
                                       (b"content-length", str(len(FAILED_BODY)).encode())]})
            await secured({"type": "http.response.body", "body": FAILED_BODY})
        finally:
            route = route_of(path)
            self.metrics.observe(route, scope.get("method", "GET"), status, time.perf_counter() - started)
            app_metrics().refusal(route, status, scope.get(LEFT_OUT, 0))
