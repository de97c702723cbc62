"""JSON from outside, parsed with a nesting limit: any depth is refused without a ``RecursionError``.

``json.loads`` recurses once per nested object or array: a line of ``'[' * 200_000`` raises ``RecursionError``
(a 500), and JSON nested a few hundred levels deep parses but makes pydantic, ``copy.deepcopy`` and the
database drivers recurse later. :func:`loads` refuses both past :data:`MAX_JSON_DEPTH` levels with
:class:`JsonTooDeep`; each caller turns that into its own error, naming its field or line.

Example::

    from stackyard.json_limits import MAX_JSON_DEPTH, JsonTooDeep, loads

    try:
        record = loads(line)
    except JsonTooDeep:
        raise BadJobSource(f"JSONL line {number} nests more than {MAX_JSON_DEPTH} levels deep; ...")
    except ValueError as exc:  # malformed (json.JSONDecodeError), or bytes that are not UTF-8/16/32
        ...
"""

from __future__ import annotations

import json
from typing import Any

MAX_JSON_DEPTH = 64
"""The deepest nesting of objects and arrays accepted from outside."""


class JsonTooDeep(Exception):
    """The JSON nests objects and arrays more than ``limit`` levels deep (not a ValueError: it is well formed)."""

    def __init__(self, limit: int = MAX_JSON_DEPTH):
        self.limit = limit
        super().__init__(f"nests objects and arrays more than {limit} levels deep; the limit is {limit}")


def too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether objects/arrays nest more than ``limit`` levels in ``value``; iterative, so any depth is safe."""
    level = [value] if isinstance(value, dict | list) else []
    depth = 0
    while level:  # one nesting level per pass: about as fast as json.loads itself
        depth += 1
        if depth > limit:
            return True
        inner = []
        for item in level:
            for child in item.values() if isinstance(item, dict) else item:
                if isinstance(child, dict | list):
                    inner.append(child)
        level = inner
    return False


def loads(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads`` that raises :class:`JsonTooDeep` past ``limit`` levels (however deep), ``ValueError``
    for malformed JSON."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise JsonTooDeep(limit) from None
    if too_deep(value, limit):
        raise JsonTooDeep(limit)
    return value
