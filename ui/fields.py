"""Numbers typed into a page, checked against the ranges the HTTP API declares for the same fields.

A handler gets what the browser sent: a Number box gives a float (or None), a Textbox a string, a server
function whatever JSON the canvas posted. :func:`whole_number` and :func:`rate` turn such a value into a
number in range or raise :class:`FieldInvalid` naming the field and its range, which the page shows as its
usual ``⚠️`` line (the editor: its error payload), never an exception and never a value an INTEGER column
cannot hold.

Example::

    whole_number("3", field="Version", high=INT32_MAX)        # 3 (also 3.0); None or "" → None
    whole_number("abc", field="Version", high=INT32_MAX, hint="; leave it empty for the newest")
    # FieldInvalid: Version 'abc' is not a whole number from 1 to 2147483647; leave it empty for the newest.
"""

from __future__ import annotations

import math
from typing import Any

from stackyard.errors import StackyardError


class FieldInvalid(StackyardError):
    status = 422


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _number(value: Any) -> int | float | None:
    """``value`` as an int or a finite float; None when it is no number (text, a bool, NaN, infinity)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    text = str(value).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _refuse(value: Any, field: str, allowed: str, hint: str) -> FieldInvalid:
    return FieldInvalid(f"{field} '{str(value).strip()[:40]}' is not {allowed}{hint}.", field=field)


def whole_number(value: Any, *, field: str, high: int, low: int = 1, empty: int | None = None,
                 hint: str = "") -> int | None:
    """``value`` as an int in ``low .. high``, or ``empty`` when nothing was typed; ``hint`` ends the error."""
    if _blank(value):
        return empty
    number = _number(value)
    if number is None or number != int(number) or not low <= number <= high:
        raise _refuse(value, field, f"a whole number from {low} to {high}", hint)
    return int(number)


def rate(value: Any, *, field: str, high: int) -> float | None:
    """A rate above 0 and at most ``high``; None (no limit) when nothing or 0 was typed."""
    if _blank(value):
        return None
    number = _number(value)
    if number == 0:
        return None
    if number is None or not 0 < number <= high:
        raise _refuse(value, field, f"a number above 0 and at most {high}", "; type 0 or leave it empty for no limit")
    return float(number)
