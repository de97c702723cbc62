"""The one place domain errors become HTTP responses: by exception class, never by message text.

Body shape: ``{"error": {"message": ..., "type": ..., "field": ..., "issues": [...]}}``. Secret values are
masked in every error body (:mod:`stackyard.redact`): an error may quote what it was given.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from stackyard.errors import StackyardError
from stackyard.redact import redact_data
from store.db import unavailable
from workflows.errors import WorkflowInvalid

log = logging.getLogger("stackyard.api")


class RequestTooLarge(StackyardError):
    status = 413


def error_body(message: str, type_: str, *, field: str | None = None, issues: list | None = None,
               report: dict | None = None) -> dict:
    body: dict = {"message": message, "type": type_}
    if field:
        body["field"] = field
    if issues is not None:
        body["issues"] = issues
    if report:                       # a refusal with its evidence (the publishing gate's checks)
        body["report"] = report
    return {"error": body}


_OPENAI_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
                 404: "invalid_request_error", 413: "invalid_request_error", 422: "invalid_request_error",
                 429: "rate_limit_error"}


def _respond(request: Request, status: int, message: str, type_: str, *, field: str | None = None,
             issues: list | None = None, report: dict | None = None) -> JSONResponse:
    if request.url.path.startswith("/v1/"):  # the OpenAI-compatible API answers in OpenAI's error shape
        code = "model_not_found" if status == 404 else type_
        body = {"error": {"message": message, "type": _OPENAI_TYPES.get(status, "server_error"), "param": field, "code": code}}
        return JSONResponse(redact_data(body), status_code=status)
    return JSONResponse(redact_data(error_body(message, type_, field=field, issues=issues, report=report)),
                        status_code=status)


def _first_error(errors: list) -> tuple[str, str]:
    first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
    field = ".".join(str(part) for part in first["loc"] if part != "body")
    return field, f"{field or 'request'}: {first['msg']}"


_HTTP_TYPES = {400: "RequestInvalid", 401: "LoginRequired", 404: "NotFound", 405: "MethodNotAllowed"}
API_PREFIXES = ("/api/", "/v1/")

RETRY_AFTER_SECONDS = 1
CLIENT_CLOSED_REQUEST = 499  # nginx's code for it; nobody is left to receive it, but access logs show it


def install(app: FastAPI) -> None:
    @app.exception_handler(ClientDisconnect)
    async def _gone(request: Request, exc: ClientDisconnect) -> Response:
        # The client hung up before its body arrived: its business, not a server error with a traceback.
        return Response(status_code=CLIENT_CLOSED_REQUEST)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        # Raised by Starlette itself (e.g. "Invalid multipart data." from request.form()): on the API, in the
        # API's error shape, as the OpenAPI document says; elsewhere (the UI) as FastAPI answers it.
        if not request.url.path.startswith(API_PREFIXES):
            return await http_exception_handler(request, exc)
        response = _respond(request, exc.status_code, str(exc.detail), _HTTP_TYPES.get(exc.status_code, "HTTPError"))
        response.headers.update(exc.headers or {})
        return response

    @app.exception_handler(StackyardError)
    async def _domain(request: Request, exc: StackyardError) -> JSONResponse:
        issues = [issue.to_dict() for issue in exc.issues] if isinstance(exc, WorkflowInvalid) else None
        return _respond(request, exc.status, str(exc), type(exc).__name__, field=getattr(exc, "field", None),
                        issues=issues, report=getattr(exc, "report", None))

    @app.exception_handler(OperationalError)
    @app.exception_handler(SATimeoutError)
    async def _database(request: Request, exc: Exception) -> Response:
        # PostgreSQL unreachable, refusing connections (too many clients), the pool exhausted, or SQLite's write
        # lock held past its timeout: a retry may succeed, so 503 with Retry-After (clients and load balancers
        # retry it), never a 500 with a traceback.
        # Any other database error is a server error as before.
        message = unavailable(exc)
        if message is None:
            raise exc
        log.warning("%s %s: %s", request.method, request.url.path, message)
        response = _respond(request, 503, message, "DatabaseUnavailable")
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return response

    @app.exception_handler(RequestValidationError)
    async def _request(request: Request, exc: RequestValidationError) -> JSONResponse:
        field, message = _first_error(exc.errors())
        return _respond(request, 422, message, "RequestInvalid", field=field or None)

    @app.exception_handler(ValidationError)
    async def _body(request: Request, exc: ValidationError) -> JSONResponse:
        # Bodies parsed by hand (size-limited endpoints) fail here rather than in FastAPI's own validation.
        field, message = _first_error(exc.errors())
        return _respond(request, 422 if not request.url.path.startswith("/v1/") else 400, message, "RequestInvalid",
                        field=field or None)
