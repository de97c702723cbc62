"""The one error base class: every room raises these, and each transport (HTTP, CLI, UI) translates them at
one boundary by ``status``, never by matching message text."""

from __future__ import annotations


class StackyardError(Exception):
    """Base of Stackyard's domain errors; ``status`` is the HTTP status the API maps it to, and ``field`` the
    request field, parameter or page box it is about, when there is one (transports pin the error to it)."""

    status = 400
    field: str | None = None

    def __init__(self, message: str = "", field: str | None = None) -> None:
        super().__init__(message)
        if field is not None:
            self.field = field


class NotFound(StackyardError):
    status = 404


class Conflict(StackyardError):
    status = 409
