"""The scoring endpoints answered in lapse's own ASGI middleware, after the guard, without BentoML's API wrapper.

BentoML declares POST /score, /explain and /triage (`@bentoml.api` in service.py): their request and response
models, the OpenAPI spec, a Bento's list of APIs. Answering one through BentoML also runs its per-request
machinery: matching the path against every route and mount, its context and exception middlewares, reading
the input spec, inspecting the method's signature and chaining background tasks. For a one-patient request
that is a large share of the server's CPU (`benchmarks/serving.py` prints BentoML's own floor beside lapse's
one-patient figures). By the time a request reaches this middleware the guard has checked its key and
validated its body into the endpoint's request model, so the endpoint's own function is called here with
that model's fields, as BentoML would call it, and its Response is sent. A request the guard did not
validate (another route, another method) goes on to BentoML unchanged.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic import BaseModel
from starlette.responses import JSONResponse, Response

from .guard import VALIDATED
from .logging import redacted_traceback

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
log = logging.getLogger("lapse.serving.endpoints")
FAILED = {"error": "an unexpected error has occurred; the server log says where (without your values)"}


class Endpoints:
    """ASGI middleware: POST `routes` (path -> endpoint method name) answered by the running service instance."""

    def __init__(self, app: Callable[..., Awaitable[None]], *, service: Callable[[], object | None],
                 routes: Mapping[str, str]) -> None:
        self.app = app
        self.service = service  # the running instance of the service class, None until it has started
        self.routes = dict(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self.routes.get(scope["path"]) if scope["type"] == "http" and scope.get("method") == "POST" else None
        request = scope.get(VALIDATED) if name is not None else None
        instance = self.service() if isinstance(request, BaseModel) else None
        if instance is None:
            await self.app(scope, receive, send)
            return
        # The undecorated method BentoML would call (`APIMethod.func`), with the request model's fields.
        function = getattr(type(instance), name).func
        try:
            answer = await function(instance, **{field: getattr(request, field) for field in type(request).model_fields})
        except Exception as error:  # noqa: BLE001 - answered as BentoML answers an endpoint's failure, in JSON
            log.error("%s %s failed: %s", scope.get("method"), scope["path"], redacted_traceback(error))
            answer = JSONResponse(FAILED, status_code=500)
        if isinstance(answer, BaseModel):
            answer = Response(answer.model_dump_json(), media_type="application/json")
        await answer(scope, receive, send)
