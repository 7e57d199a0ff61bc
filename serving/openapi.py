"""lapse's OpenAPI document: BentoML's generated spec, corrected to say what the service really does.

BentoML writes the request and response models of each endpoint; this module adds what it does
not know: lapse's title, version and description, the bearer security scheme, every status code
an operation can answer with the `ErrorBody` it carries, the request-id, idempotency and version
headers, the tier and policy enums, and GET /decisions' query parameters. `patch` is a pure
function of the generated spec; the edge (serving/edge.py) serves its result at /docs.json.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any, get_args

from outreach.settings import PolicySettings

from .schemas import DecisionPage, ErrorBody, PatientLeftOut

API_VERSION = "1"
TITLE = "lapse risk service"
DESCRIPTION = """Dropout risk, reasons in a clinician's words, and support decisions for patients of a
digital mental health program. Every call except the health checks needs `Authorization: Bearer <key>`.

- **Version**: the API version is 1. Every path is answered both as written here and under `/v1`
  (e.g. `/v1/score`); every reply carries `API-Version: 1`. A future incompatible version gets `/v2`.
- **Request ids**: every reply carries `X-Request-ID`: the caller's own when it sent a sane one
  (1-40 of letters, digits, `._:-`), else a new one. It is stored on the decision rows.
- **Idempotency**: send `Idempotency-Key` with POST /score, /explain or /triage; a retry with the same
  key and the same body returns the first answer (`Idempotent-Replayed: true`) without a second decision.
  The same key with a different body is refused with 422; a retry while the first is still being answered
  gets 409.
- **Errors**: every refusal, 404 and 405 included, is JSON `{"error": ..., "problems": [...]}`; problems name
  the field and the rule broken, never the value sent.
"""

# Status codes each operation can answer besides 200, with when.
_WHEN = {
    401: "no key, or a wrong key",
    403: "a client key on an admin endpoint",
    409: "a retry with this Idempotency-Key while the first request is still being answered",
    413: "the body is over the size limit",
    415: "the body is not JSON",
    422: "the request breaks a rule (the problems name the field and the rule); or an Idempotency-Key reused "
         "with a different body",
    429: "too many wrong keys from this client, or too many open connections (see Retry-After)",
    503: "no model is loaded yet, or the decision could not be recorded (no answer is given)",
    504: "the request took longer than the time limit",
}
_SCORING = (401, 409, 413, 415, 422, 429, 503, 504)
STATUSES: dict[tuple[str, str], tuple[int, ...]] = {
    ("/score", "post"): _SCORING,
    ("/explain", "post"): _SCORING,
    ("/triage", "post"): _SCORING,
    ("/admin/reload", "post"): (401, 403, 409, 413, 415, 422, 429, 503, 504),
    ("/model", "get"): (401, 429, 503),
    ("/decisions", "get"): (401, 422, 429, 503),
    ("/metrics", "get"): (401,),
    ("/readyz", "get"): (503,),
    ("/livez", "get"): (),
    ("/healthz", "get"): (),
}
OPEN = frozenset({"/livez", "/healthz", "/readyz"})
IDEMPOTENT = frozenset({"/score", "/explain", "/triage"})
_RELOAD_409 = "a reload refused a broken version (the old one is still served)"
_DECISION_QUERY = (
    ("patient_id", "only this patient's decisions"),
    ("since", "decisions made at or after this time (ISO 8601 with a time zone)"),
    ("until", "decisions made before this time (ISO 8601 with a time zone)"),
    ("cursor", "`next_cursor` of the previous page"),
    ("limit", "decisions per page, 1 to 1000 (default 100)"),
)


def package_version() -> str:
    """lapse's installed version."""
    try:
        return version("lapse")
    except PackageNotFoundError:
        return "0+unknown"


def _schema(model: type) -> tuple[str, dict[str, Any], dict[str, Any]]:
    full = model.model_json_schema(ref_template="#/components/schemas/{model}")
    return model.__name__, {k: v for k, v in full.items() if k != "$defs"}, full.get("$defs", {})


def _add_components(spec: dict[str, Any]) -> None:
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorBody, PatientLeftOut, DecisionPage):
        name, body, defs = _schema(model)
        schemas[name] = body
        schemas.update(defs)
    spec["components"]["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer",
                   "description": "a client API key (admin endpoints: the admin key)"}
    }


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "schema": {"type": "string"}}


_REPLY_HEADERS = {"X-Request-ID": _header("this request's id"), "API-Version": _header("the API version: 1")}


def _responses(path: str, method: str, operation: dict[str, Any]) -> dict[str, Any]:
    ok = operation.get("responses", {}).get("200") or {"description": "OK"}
    ok = {**ok, "headers": {**_REPLY_HEADERS, **(ok.get("headers") or {})}}
    if path in IDEMPOTENT:
        ok["headers"]["Idempotent-Replayed"] = _header("`true` when this is the stored answer to an earlier request")
    out: dict[str, Any] = {"200": ok}
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for status in STATUSES.get((path, method), (401, 429)):
        when = _RELOAD_409 if (path, status) == ("/admin/reload", 409) else _WHEN[status]
        out[str(status)] = {"description": when, "headers": _REPLY_HEADERS, "content": error}
    return out


def _parameters(path: str, method: str) -> list[dict[str, Any]]:
    params = [{"name": "X-Request-ID", "in": "header", "required": False, "description": "your id for this request",
               "schema": {"type": "string", "maxLength": 40, "pattern": r"^[A-Za-z0-9][A-Za-z0-9._:-]*$"}}]
    if path in IDEMPOTENT:
        params.append({"name": "Idempotency-Key", "in": "header", "required": False,
                       "description": "makes a retry return the first answer without a second decision",
                       "schema": {"type": "string", "minLength": 1, "maxLength": 200}})
    if path == "/decisions":
        params += [{"name": name, "in": "query", "required": False, "description": text,
                    "schema": {"type": "string"}} for name, text in _DECISION_QUERY]
    return params


def _enums(node: Any, tiers: Sequence[str], policies: Sequence[str]) -> None:
    """Give every string property called `tier` / `policy` its closed set of values."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict):
            for name, values in (("tier", tiers), ("policy", policies)):
                if values and isinstance(props.get(name), dict) and props[name].get("type") == "string":
                    props[name] = {**props[name], "enum": list(values)}
        for value in node.values():
            _enums(value, tiers, policies)
    elif isinstance(node, list):
        for value in node:
            _enums(value, tiers, policies)


def patch(generated: dict[str, Any], tiers: Sequence[str] = ()) -> dict[str, Any]:
    """The generated spec with lapse's info, security, statuses, headers and enums."""
    spec = copy.deepcopy(generated)
    spec["info"] = {"title": TITLE, "version": package_version(), "description": DESCRIPTION,
                    "x-api-version": API_VERSION}
    _add_components(spec)
    paths = spec.setdefault("paths", {})
    if "/decisions" in paths:
        paths["/decisions"]["get"]["responses"]["200"] = {
            "description": "a page of decisions",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DecisionPage"}}}}
    for path, operations in paths.items():
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "delete", "patch", "head"):
                continue
            operation["responses"] = _responses(path, method, operation)
            known = {p.get("name") for p in operation.get("parameters", [])}
            operation["parameters"] = [*[p for p in operation.get("parameters", []) if p.get("name") not in
                                         {"X-Request-ID", "Idempotency-Key"}],
                                       *[p for p in _parameters(path, method) if p["name"] not in known
                                         or p["in"] == "header"]]
            operation["security"] = [] if path in OPEN else [{"bearer": []}]
    policies = get_args(PolicySettings.model_fields["policy"].annotation)
    _enums(spec, tiers, policies)
    return spec
