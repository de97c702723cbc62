"""Errors of the nodes package: inputs a Stackyard node refuses.

Each error carries ``field`` (the input or parameter it is about, e.g. ``"urls"``, ``"sources"``) so a
transport can pin it to a node and port by class and attribute, never by matching message text. Every
message names the fix. All arguments after the message have defaults, so ``cls(message)`` rebuilds one
(pickling, Celery result backends).
"""

from __future__ import annotations

from stackyard.errors import StackyardError


class NodeInputError(ValueError):
    """A node refused an input or parameter; ``field`` names it and the message says how to fix it."""

    def __init__(self, message: str, *, field: str = "") -> None:
        super().__init__(message)
        self.field = field


class UnsafeURLError(NodeInputError):
    """A URL (or a redirect hop) points at a non-public address or uses a scheme other than http(s)."""

    def __init__(self, message: str, *, field: str = "urls", url: str = "", address: str | None = None) -> None:
        super().__init__(message, field=field)
        self.url = url
        self.address = address


class FileAccessError(NodeInputError):
    """A path escapes the files root, is malformed, or names nothing under the root."""

    def __init__(self, message: str, *, field: str = "sources", path: str = "", root: str = "") -> None:
        super().__init__(message, field=field)
        self.path = path
        self.root = root


class NodeLoadError(StackyardError):
    """A node could not get ready to run (its model would not load): ``node`` names it, the message says the fix."""

    def __init__(self, message: str, *, node: str = "", component_type: str = "") -> None:
        super().__init__(message)
        self.node = node
        self.component_type = component_type
