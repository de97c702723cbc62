"""What ``/openapi.json`` says beyond FastAPI's defaults, so generated clients and fuzzers see the real API.

- :func:`errors` builds a route's ``responses=``: each 4xx/5xx it can answer, with the body
  :func:`api.errors.error_body` writes (OpenAI's error shape under ``/v1/``) and why it happens.
- :func:`request_body` builds ``openapi_extra=`` for routes that read their body by hand (a JSON model,
  multipart, YAML), which FastAPI cannot see.
- :data:`API_KEY` marks the routes that take a published app's API key (the ``apiKey`` security scheme).

Example::

    router = APIRouter(prefix="/api/v1", responses=errors(400, 401, 429))      # every route of the router
    @router.post("/workflows", status_code=201, responses=errors(*BODY, 409))  # this route
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import Depends
from fastapi.security import HTTPBearer
from pydantic import BaseModel, Field


class ErrorDetail(BaseModel):
    message: str = Field(description="What went wrong and how to fix it")
    type: str = Field(description="The error's kind, e.g. NotFound, RequestInvalid, WorkflowInvalid")
    field: str | None = Field(default=None, description="The request field at fault (path.x / query.x for parameters)")
    issues: list[dict[str, Any]] | None = Field(default=None, description="Each problem of an invalid workflow, "
                                                "pinned to a node and port")


class ErrorResponse(BaseModel):
    """Every error of the Stackyard API."""

    error: ErrorDetail


class OpenAIErrorDetail(BaseModel):
    message: str
    type: str = Field(description="invalid_request_error, authentication_error, permission_error, rate_limit_error "
                                  "or server_error")
    param: str | None = Field(description="The request field at fault")
    code: str | None


class OpenAIErrorResponse(BaseModel):
    """Errors of the OpenAI-compatible API (``/v1/``), in OpenAI's shape."""

    error: OpenAIErrorDetail


WHY: dict[int, str] = {
    400: "The body is not valid JSON or nests too deeply, or the Host header names a host this server does not "
         "answer (STACKYARD_ALLOWED_HOSTS).",
    401: "Only when STACKYARD_ADMIN_PASSWORD is set: log in first (HTTP Basic user 'admin', or the session "
         "cookie /login sets).",
    403: "A browser request from another web site (Origin or Sec-Fetch-Site), refused "
         "(STACKYARD_ALLOWED_ORIGINS).",
    404: "Not found; the message names what is missing and how to list what exists.",
    409: "Conflicts with the current state: a name taken, a run or job already finished, or a change made "
         "meanwhile (try again).",
    413: "The body is over STACKYARD_MAX_BODY_BYTES.",
    415: "The body has a Content-Type any web page can send (text/plain, a form, none); send the type it holds.",
    422: "A field is invalid; `field` names it.",
    429: "Only when STACKYARD_ADMIN_PASSWORD is set: too many failed logins from this client or overall; retry "
         "after Retry-After seconds.",
    502: "The workflow run failed or was cancelled; the message says why.",
    503: "The broker is unreachable, so nothing was queued (STACKYARD_BROKER_URL); or the database is (any route: "
         "unreachable, refusing connections, every pooled connection busy, or SQLite's write lock held by another "
         "process); retry after Retry-After seconds.",
    504: "The reply did not come within its time limit; the run was cancelled and the message says what to do.",
}
KEY_WHY: dict[int, str] = {
    401: "Missing, invalid or revoked API key: send 'Authorization: Bearer <key>'.",
    403: "The API key is limited to another app, or a browser request came from another web site.",
    429: "The key's rate per minute or the app's max concurrency is used up; retry shortly.",
}

API_KEY = Depends(HTTPBearer(auto_error=False, scheme_name="apiKey",
                             description="A published app's API key (`stackyard keys create`)"))
"""In ``dependencies=``: documents the key only; the route itself checks it (401/403/429 in its own words)."""

BODY = (400, 403, 413, 415, 422)
"""What any route that reads a JSON body may answer before its own checks."""
WRITE = (403, 415)
"""What any POST/PATCH/DELETE may answer: refused as cross-site, or carrying a body of a form's type."""

# Schemas of bodies that are not JSON models.
TEXT = {"type": "string"}
BINARY = {"type": "string", "format": "binary"}
PIPELINE = {"type": "object", "description": "A Haystack pipeline (components, connections, metadata) with Stackyard's "
                                             "inputs and outputs, or a Hayhooks pipeline file, in YAML or JSON"}

_GUARD_SHAPED = {415}          # api.guard answers these before any route, in Stackyard's shape
_EITHER_SHAPE = {400, 403}     # from api.guard (Stackyard's shape) or from the route (OpenAI's shape)


def errors(*statuses: int, openai: bool = False, why: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for these statuses: the error body and a description (``why`` overrides it)."""
    responses: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        model: Any = ErrorResponse
        if openai and status in _EITHER_SHAPE:
            model = OpenAIErrorResponse | ErrorResponse
        elif openai and status not in _GUARD_SHAPED:
            model = OpenAIErrorResponse
        responses[status] = {"model": model, "description": (why or {}).get(status) or WHY[status]}
    return responses


def request_body(content: dict[str, dict[str, Any]], *, required: bool = True) -> dict[str, Any]:
    """``openapi_extra=`` describing a body the route reads itself: media type → JSON schema."""
    return {"requestBody": {"content": {media: {"schema": schema} for media, schema in content.items()},
                            "required": required}}


def schema_of(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON schema as request input, self-contained (no ``$ref``)."""
    schema = model.model_json_schema(mode="validation")
    definitions = schema.pop("$defs", {})
    return _inline(schema, definitions)


def _inline(node: Any, definitions: dict[str, Any]) -> Any:
    # An inline schema cannot point into a "$defs" of its own: in the OpenAPI document "#/..." means its root.
    if isinstance(node, list):
        return [_inline(item, definitions) for item in node]
    if not isinstance(node, dict):
        return node
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return _inline(copy.deepcopy(definitions[ref.removeprefix("#/$defs/")]), definitions)
    # A discriminator's mapping names those $defs too; each branch's ``const`` tag already says the same.
    return {key: _inline(value, definitions) for key, value in node.items() if key != "discriminator"}

