"""BentoML's own floor for benchmarks/serving.py: a service that does no work, with lapse's BentoML settings.

`POST /score` is an async `@bentoml.api` taking the same body as lapse's /score and returning a constant
JSON reply as a Response (as lapse's endpoints do, so BentoML serialises nothing); `POST /asgi/score` is a
plain Starlette route mounted in the same server, reading the body and returning the same reply. Neither
checks keys, parses features, scores or logs a decision.
"""

from __future__ import annotations

from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

REPLY = b'{"results":[]}'


async def _plain(request: Request) -> Response:
    await request.body()
    return Response(REPLY, media_type="application/json")


plain_app = Starlette(routes=[Route("/score", _plain, methods=["POST"])])


@bentoml.service(
    name="bentoml-floor",
    workers=1,
    http={"host": "127.0.0.1"},
    metrics={"enabled": False},
    logging={"access": {"enabled": True, "request_content_length": True, "response_content_length": True}},
    tracing={"excluded_urls": [r"."]},
)
@bentoml.asgi_app(plain_app, path="/asgi")
class Floor:
    """No work: the cost of BentoML's request handling alone."""

    @bentoml.api(route="/score")
    async def score(self, patients: list[dict[str, Any]]) -> dict[str, Any]:
        # Annotated with the JSON shape for BentoML's spec; a Response is passed through as it is.
        return Response(REPLY, media_type="application/json")
