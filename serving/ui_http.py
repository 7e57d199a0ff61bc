"""HTTP helpers of the clinician page (serving/ui.py): security headers, JSON answers, bounded bodies,
the Origin check of state-changing posts, and the sign-in form."""

from __future__ import annotations

import html
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

SECURITY_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    # same-origin, not no-referrer: with no-referrer browsers send "Origin: null" on the page's own form posts.
    "referrer-policy": "same-origin",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}


def _secure(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


def _json(content: Any, status: int = 200) -> Response:
    return _secure(JSONResponse(content, status_code=status))


def _error(status: int, message: str) -> Response:
    return _json({"error": message}, status)


async def _body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it grows past `limit` bytes."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def allowed_origins(public_origin: str, server: tuple[str, int] | None) -> set[str]:
    """The origins a state-changing request may come from: the configured one, else the bound address."""
    if public_origin:
        return {public_origin.rstrip("/")}
    if not server:
        return set()
    host, port = server
    hosts = {f"[{host}]" if ":" in host else host}
    if host in ("127.0.0.1", "::1"):
        hosts.add("localhost")
    out = {f"{scheme}://{h}:{port}" for scheme in ("http", "https") for h in hosts}
    if port == 80:
        out |= {f"http://{h}" for h in hosts}
    if port == 443:
        out |= {f"https://{h}" for h in hosts}
    return out


def _same_origin(request: Request, public_origin: str) -> bool:
    """Whether a POST comes from this page: browsers send Origin on every POST, so none is refused."""
    origin = request.headers.get("origin")
    if not origin:
        return False
    return origin.rstrip("/") in allowed_origins(public_origin, request.scope.get("server"))


def _base(request: Request) -> str:
    """The page's own path prefix (where it is mounted), without a trailing slash."""
    return request.scope.get("root_path", "").rstrip("/")


def login_html(message: str | None = None) -> str:
    """The sign-in form (a plain HTML form; works without JavaScript)."""
    error = (f'<p class="form-error" id="login-error" role="alert">{html.escape(message)}</p>'
             if message else "")
    described = ' aria-describedby="login-error" aria-invalid="true"' if message else ""
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in · lapse</title>
<link rel="stylesheet" href="static/ui.css">
<link rel="icon" href="static/favicon.svg" type="image/svg+xml">
</head>
<body class="login-page">
<main id="main" class="login-box">
<h1>lapse</h1>
<p class="lead">Who may need support today, and why.</p>
<form method="post" action="login" class="login-form">
<label for="key">Access key</label>
<input id="key" name="key" type="password" autocomplete="off" required autofocus{described}>
<p class="hint">Use the API key your team was given for the lapse service.</p>
{error}
<button type="submit" class="primary">Sign in</button>
</form>
</main>
</body>
</html>
"""
