"""The gate in front of every endpoint: API keys, body size, and input rules, answered without values.

It runs as an ASGI middleware so a refused request never reaches BentoML's handlers (which
log pydantic errors with the offending input): 401 without a valid key, 413 for a body over
the limit, 415 for a body that is not JSON, and 422 naming the field path and the rule for
a body that breaks the request model (the batch limit included). Wrong keys are counted per client:
past `Hardening.failed_auth_limit` in the window, the client gets 429 with Retry-After. Validated
batches are range-checked (serving/bounds.py): a patient with an impossible value is left out and
named in the reply's `errors`, the others are scored; a request where nothing can be scored is a 422.
Error replies never repeat a client's field names beyond a short, safe form.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from . import bounds
from .app_metrics import LEFT_OUT
from .auth import KeyRing, bearer_token
from .ratelimit import FailureLimiter, client_of
from .schemas import validate_json
from .sent import SentItems
from .settings import Hardening

M = TypeVar("M", bound=BaseModel)

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# Where the guard leaves the validated request for the endpoint (see `validated_input`).
VALIDATED = "lapse.validated_request"


class BodyTooLarge(Exception):
    """The request body is over the configured limit."""


_SAFE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_UNNAMED = "(a name not shown)"


def field_path(loc: tuple[Any, ...]) -> str:
    """A pydantic error location as a readable path: patients[0].features.age.

    A part that is not a short identifier (an unknown field or dict key the client made up) is not
    repeated back: it may be long, or data in the wrong place.
    """
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            text = str(part)
            if text == "[key]" or not _SAFE_NAME.fullmatch(text):
                text = _UNNAMED if text != "[key]" else "(key)"
            path += f".{text}" if path else text
    return path or "(body)"


def problems_of(error: ValidationError) -> list[dict[str, str]]:
    """Field path, rule and error type of each validation error; never the input."""
    return [
        {"field": field_path(e["loc"]), "rule": e["msg"], "type": e["type"]}
        for e in error.errors(include_input=False, include_context=False, include_url=False)
    ]


def error_body(message: str, problems: list[dict[str, str]] | None = None) -> bytes:
    """The JSON body of every refusal: a message and, for bad input, the problems by field."""
    body: dict[str, Any] = {"error": message}
    if problems is not None:
        body["problems"] = problems
    return json.dumps(body).encode("utf-8")


async def _respond(send: Send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | tuple = ()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def replaying(body: bytes, receive: Receive) -> Receive:
    """A receive channel that gives the already-read `body` once, then the client's channel (disconnects)."""
    given = False

    async def replay() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing as soon as it grows past `limit` bytes."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return True
    media = content_type.split(";")[0].strip().lower()
    return media == "application/json" or media.endswith("+json")


class RequestGuard:
    """ASGI middleware: authenticate, bound the body, and validate it against the route's model."""

    def __init__(
        self,
        app: Callable[..., Awaitable[None]],
        *,
        models: Mapping[str, type[BaseModel]],
        admin_paths: frozenset[str],
        open_paths: frozenset[str],
        max_body_bytes: int,
        keys: KeyRing | None = None,
        open_prefixes: tuple[str, ...] = (),
        settings: Hardening = Hardening(),
    ) -> None:
        self.app = app
        self.models = dict(models)
        self.admin_paths = admin_paths
        self.open_paths = open_paths
        self.open_prefixes = ("/static_content/", "/assets/", *open_prefixes)
        self.max_body_bytes = max_body_bytes
        self.keys = keys if keys is not None else KeyRing.from_env()
        self.settings = settings
        self.failures = FailureLimiter(settings.failed_auth_limit, settings.failed_auth_window_s)
        self.earliest = datetime.fromisoformat(settings.earliest_time)

    def _is_open(self, path: str) -> bool:
        return path in self.open_paths or path.startswith(self.open_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or self._is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        client = client_of(scope)
        wait = self.failures.retry_after(client)
        if wait is not None:
            await _respond(send, 429, error_body("too many failed attempts with wrong keys; wait and try again"),
                           [(b"retry-after", str(wait).encode())])
            return
        self.keys.refresh()
        token = bearer_token(headers.get("authorization"))
        challenge = [(b"www-authenticate", b'Bearer realm="lapse"')]
        if path in self.admin_paths:
            if not self.keys.is_admin(token):
                status = 403 if self.keys.is_client(token) else 401
                if status == 401 and token:
                    self.failures.failed(client)
                await _respond(send, status, error_body("this endpoint needs the admin key"), challenge)
                return
        elif not self.keys.is_client(token):
            if token:  # a key was tried and is wrong (a call without any key guesses nothing)
                self.failures.failed(client)
            await _respond(send, 401, error_body("a valid API key is needed: Authorization: Bearer <key>"), challenge)
            return

        model = self.models.get(path)
        if model is None or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await _respond(send, 413, error_body(f"request body is over the limit of {self.max_body_bytes} bytes"))
            return
        if not _is_json(headers.get("content-type")):
            await _respond(send, 415, error_body("the request body must be JSON (Content-Type: application/json)"))
            return
        try:
            body = await read_body(receive, self.max_body_bytes)
        except BodyTooLarge:
            await _respond(send, 413, error_body(f"request body is over the limit of {self.max_body_bytes} bytes"))
            return
        try:
            validated = validate_json(model, body or b"{}")
        except ValidationError as error:
            await _respond(send, 422, error_body("the request breaks the rules below", problems_of(error)))
            return
        validated, rejected = self._in_range(validated)
        if validated is None:
            await _respond(send, 422, error_body("the request breaks the rules below", rejected))
            return
        scope[VALIDATED] = validated
        if rejected:
            scope[LEFT_OUT] = len(rejected)
            send = _with_errors(send, rejected)

        await self.app(scope, replaying(body, receive), send)

    def _in_range(self, request: BaseModel) -> tuple[BaseModel | None, list[dict[str, Any]]]:
        """The request without its out-of-range patients, and their problems; (None, problems) if none is left."""
        if hasattr(request, "patient"):
            problems = bounds.patient_problems(request.patient, "patient", self.earliest,
                                               feature_names=request.feature_names)
            return (None, problems) if problems else (request, [])
        items = getattr(request, "patients", None)
        if not items:
            return request, []
        duplicates = bounds.duplicate_problems(items)
        if duplicates:
            return None, duplicates
        bad = bounds.batch_problems(items, self.earliest)
        if not bad:
            return request, []
        if len(bad) == len(items):
            return None, [p for problems in bad.values() for p in problems]
        keep = [i for i in range(len(items)) if i not in bad]
        kept = items.take(keep) if isinstance(items, SentItems) else [items[i] for i in keep]
        errors = [{"index": i, "patient_id": items[i].patient_id, "problems": problems} for i, problems in bad.items()]
        return request.model_copy(update={"patients": kept}), errors


def _with_errors(send: Send, errors: list[dict[str, Any]]) -> Send:
    """`send` that adds `errors` (the patients left out) to a successful JSON answer."""
    held: Message | None = None
    chunks: list[bytes] = []

    async def wrapped(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                await send(message)
                return
            held = message
            return
        if held is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body", False):
            return
        answer = json.loads(b"".join(chunks))
        answer["errors"] = errors
        body = json.dumps(answer).encode("utf-8")
        headers = [(k, v) for k, v in held.get("headers", []) if k.lower() != b"content-length"]
        await send({**held, "headers": [*headers, (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return wrapped


def validated_input(model: type[M]) -> type[M]:
    """`model` as a BentoML input spec that takes the request the guard validated instead of parsing it again."""
    import bentoml

    async def from_http_request(cls, request, serde):  # noqa: ANN001 - BentoML's hook signature
        validated = request.scope.get(VALIDATED)
        if isinstance(validated, model):
            return validated
        return await serde.parse_request(request, cls)

    return type(model.__name__, (model, bentoml.IODescriptor),
                {"__module__": model.__module__, "__doc__": model.__doc__,
                 "from_http_request": classmethod(from_http_request)})
