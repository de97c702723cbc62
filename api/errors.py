"""The one place domain errors become HTTP responses: by exception class, never by message text.

Body shape: ``{"error": {"message": ..., "type": ..., "field": ..., "issues": [...]}}``.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from workflows.errors import StackyardError, WorkflowInvalid


class RequestTooLarge(StackyardError):
    status = 413


def error_body(message: str, type_: str, *, field: str | None = None, issues: list | None = None) -> dict:
    body: dict = {"message": message, "type": type_}
    if field:
        body["field"] = field
    if issues is not None:
        body["issues"] = issues
    return {"error": body}


def install(app: FastAPI) -> None:
    @app.exception_handler(StackyardError)
    async def _domain(_: Request, exc: StackyardError) -> JSONResponse:
        issues = [issue.to_dict() for issue in exc.issues] if isinstance(exc, WorkflowInvalid) else None
        return JSONResponse(error_body(str(exc), type(exc).__name__, field=getattr(exc, "field", None), issues=issues),
                            status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def _request(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        field = ".".join(str(part) for part in first["loc"] if part != "body")
        return JSONResponse(error_body(f"{field or 'request'}: {first['msg']}", "RequestInvalid", field=field or None),
                            status_code=422)
