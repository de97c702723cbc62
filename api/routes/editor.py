"""Endpoints only the editor needs: checking one new edge, and uploading run input files.

``POST /api/v1/editor/connect-check`` answers whether Haystack accepts an edge in a (possibly unfinished)
spec, with Haystack's reason when it does not. ``POST /api/v1/editor/files?name=report.pdf`` stores the
raw request body under the files root and returns the relative path a FileSource input takes.
"""

from __future__ import annotations

import re
import secrets
import time
from typing import Any

from fastapi import APIRouter, Query, Request, status

from api.bodies import LimitedRoute
from api.errors import RequestTooLarge
from api.openapi import BINARY, BODY, errors, request_body
from api.schemas.editor import ConnectCheck
from stackyard.errors import StackyardError
from stackyard.settings import get_settings
from workflows.graph import check_connection
from workflows.spec import spec_from_dict

router = APIRouter(prefix="/api/v1/editor", tags=["editor"], route_class=LimitedRoute, responses=errors(400, 401, 429))
MAX_UPLOAD_BYTES = 200 * 1024 * 1024
UPLOAD_DIR = "uploads"
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")


class BadFileName(StackyardError):
    status = 422
    field = "name"


@router.post("/connect-check", responses=errors(*BODY))
def connect_check(body: ConnectCheck) -> dict[str, Any]:
    """``{ok, message, issue, warning}``: ``ok`` false means Haystack refuses the edge, ``message`` says why."""
    return check_connection(spec_from_dict(body.spec), body.sender, body.receiver).to_dict()


def safe_file_name(name: str) -> str:
    """The last path part of ``name`` with only plain characters, e.g. ``'../a b?.pdf'`` → ``'a b_.pdf'``."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE.sub("_", base).strip(" .")
    if not cleaned:
        raise BadFileName(f"File name {name!r} has no usable characters; rename the file (e.g. notes.txt).")
    return cleaned[:150]


@router.post("/files", status_code=status.HTTP_201_CREATED, responses=errors(403, 413, 415, 422, why={
                 413: f"The file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; put large files under the files root "
                      "directly (STACKYARD_FILES_ROOT)."}),
             # An empty or missing body is an empty file.
             openapi_extra=request_body({"application/octet-stream": BINARY}, required=False))
async def upload_file(request: Request, name: str = Query(min_length=1, max_length=300)) -> dict[str, Any]:
    """Store one uploaded file under ``<files root>/uploads/<stamp>/`` and return its relative path.

    The body types a cross-site form could send (text/plain, form, multipart) are refused by ``api.guard``."""
    root = get_settings().resolved_files_root
    folder = f"{UPLOAD_DIR}/{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    relative = f"{folder}/{safe_file_name(name)}"
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    size = 0
    try:
        with open(target, "xb") as out:
            async for chunk in request.stream():
                size += len(chunk)
                if size > MAX_UPLOAD_BYTES:
                    raise RequestTooLarge(f"The file is over {MAX_UPLOAD_BYTES // (1024 * 1024)} MB; put large files "
                                          "under the files root directly (STACKYARD_FILES_ROOT).")
                out.write(chunk)
    except BaseException:
        target.unlink(missing_ok=True)
        raise
    return {"path": relative, "size": size}

