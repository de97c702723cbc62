"""The one error base class: every room raises these, and each transport (HTTP, CLI, UI) translates them at
one boundary by ``status``, never by matching message text."""

from __future__ import annotations


class StackyardError(Exception):
    """Base of Stackyard's domain errors; ``status`` is the HTTP status the API maps it to."""

    status = 400


class NotFound(StackyardError):
    status = 404


class Conflict(StackyardError):
    status = 409
