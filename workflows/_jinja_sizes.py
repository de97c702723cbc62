"""How large a constant is when written out, and how large an operation's result would be, from its operands.

The private half of :mod:`workflows.jinja_limits`: pure functions, no Jinja. Shared parts of a value
(``[l] * n`` repeats one list ``n`` times) count as often as they would be written out.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

MAX_VALUE_SIZE = 100_000


class Oversize(Exception):
    """A measured value passed the size limit."""


def size_of(value: Any, limit: int = MAX_VALUE_SIZE) -> int:
    """Characters/items ``value`` takes written out (shared parts counted each time); stops past ``limit``."""
    total, stack = 0, [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, int):
            total += item.bit_length() * 3 // 10 + 1  # decimal digits
        elif isinstance(item, Mapping):
            total += 1
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += 1
            stack.extend(item)
        else:
            total += 1
        if total > limit:
            raise Oversize
    return total


def depth_of(value: Any, limit: int = 64) -> int:
    """Nesting depth of lists/mappings in ``value``; stops counting past ``limit``."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        if isinstance(item, Mapping):
            stack.extend((child, depth + 1) for child in item.values())
        elif isinstance(item, (list, tuple)):
            stack.extend((child, depth + 1) for child in item)
    return deepest


def bounded_size(value: Any) -> int:
    """``size_of``, or just over the limit when it is larger (for estimates that multiply sizes)."""
    try:
        return size_of(value)
    except Oversize:
        return MAX_VALUE_SIZE + 1


def describe(value: Any) -> str:
    """A short phrase for a value in an error message: ``'a'``, ``1000``, ``a string of 99,999 characters``."""
    if isinstance(value, bool) or value is None or isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else f"a {value.bit_length():,}-bit number"
    if isinstance(value, str):
        return repr(value) if len(value) <= 20 else f"a string of {len(value):,} characters"
    if isinstance(value, (list, tuple)):
        return f"a list of {len(value):,} item{'' if len(value) == 1 else 's'}"
    if isinstance(value, Mapping):
        return f"a mapping of {len(value):,} keys"
    return type(value).__name__


# --- estimates of what an operation would produce, from its operands ----------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[#0 +\-]*(\*|\d+)?(?:\.(\*|\d*))?[hlL]?([a-zA-Z%])")


def format_size(template: Any, args: Any) -> int:
    """Upper bound on ``template % args``: widths and precisions are paid for, each spec may print any arg."""
    if not isinstance(template, str):
        return 0
    values = list(args.values()) if isinstance(args, Mapping) else list(args) if isinstance(args, tuple) else [args]
    largest_arg = max((bounded_size(v) for v in values), default=0)
    star = max((abs(v) for v in values if isinstance(v, int)), default=0)
    total = len(template)
    for match in _PERCENT_SPEC.finditer(template):
        for number in match.group(1, 2):
            if number == "*":
                total += star
            elif number:
                total += int(number) if len(number) <= 7 else MAX_VALUE_SIZE + 1
        total += largest_arg * (10 if match.group(3) in "ra" else 1)  # repr/ascii may escape each char
    return total


def pow_bits(base: Any, exponent: Any) -> float:
    """Bits of the integer ``base ** exponent`` (0 when the result is a float, or stays -1, 0 or 1)."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0 and abs(base) > 1:
        return exponent * math.log2(abs(base))
    return 0.0


def repeat_size(left: Any, right: Any) -> int:
    """Size of ``left * right`` when one side is a string or list and the other a count, else 0."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int) and not isinstance(times, bool):
            return bounded_size(seq) * max(times, 0)
    return 0


def arg(args: list[Any], kwargs: dict[str, Any], index: int, name: str, default: Any = None) -> Any:
    """A filter's argument by keyword, or by position after the filtered value."""
    if name in kwargs:
        return kwargs[name]
    return args[index] if len(args) > index else default


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _items(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple, Mapping)) else bounded_size(value)


def _width(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    return abs(value) if isinstance(value, int) else 0


def _replace_size(value: Any, args: list[Any], kwargs: dict[str, Any]) -> int:
    text, old, count = _text(value), str(arg(args, kwargs, 0, "old", "")), arg(args, kwargs, 2, "count")
    found = len(text) // len(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * bounded_size(arg(args, kwargs, 1, "new", ""))


def _wordwrap_size(value: Any, args: list[Any], kwargs: dict[str, Any]) -> int:
    lines = len(_text(value)) + 1  # at most one line per character
    return len(_text(value)) + lines * max(1, bounded_size(arg(args, kwargs, 2, "wrapstring", "\n")))


def _sum_size(value: Any, args: list[Any], kwargs: dict[str, Any]) -> int:
    start = arg(args, kwargs, 1, "start", 0)
    if isinstance(start, (int, float)):
        return bounded_size(value)
    return bounded_size(value) * (1 + _items(value) + bounded_size(start))  # lists/strings: quadratic


def _batch_size(value: Any, args: list[Any], kwargs: dict[str, Any]) -> int:
    padded = arg(args, kwargs, 1, "fill_with") is not None  # the last batch is filled up to linecount
    return bounded_size(value) + (_width(arg(args, kwargs, 0, "linecount", 0)) if padded else 0)


# Filters whose output can outgrow their input because of an argument: name → size estimate of the result.
_SizeRule = Callable[[Any, list[Any], dict[str, Any]], int]
GROWING_FILTERS: dict[str, _SizeRule] = {
    "center": lambda v, a, k: max(bounded_size(v), _width(arg(a, k, 0, "width", 80))),
    "indent": lambda v, a, k: bounded_size(v) + (_text(v).count("\n") + 1) * _width(arg(a, k, 0, "width", 4)),
    "replace": _replace_size,
    "format": lambda v, a, k: format_size(v, k or tuple(a)),
    "join": lambda v, a, k: bounded_size(v) + _items(v) * bounded_size(str(arg(a, k, 0, "d", ""))),
    "wordwrap": _wordwrap_size,
    "urlize": lambda v, a, k: (len(_text(v)) + 1) * (64 + bounded_size([*a, *k.values()])),
    "batch": _batch_size,
    "slice": lambda v, a, k: bounded_size(v) + 2 * _width(arg(a, k, 0, "slices", 0)),
    "sum": _sum_size,
    "tojson": lambda v, a, k: bounded_size(v) * (2 + _width(arg(a, k, 0, "indent", 0)) * depth_of(v)),
    "pprint": lambda v, a, k: bounded_size(v) * (2 + depth_of(v)),
    "round": lambda v, a, k: _width(arg(a, k, 0, "precision", 0)),  # digits of 10 ** precision
}
# Filters whose output is at most a small multiple of their input (the size check after folding is enough).
LINEAR_FILTERS = frozenset({
    "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "filesizeformat", "first",
    "float", "forceescape", "groupby", "int", "items", "last", "length", "list", "lower", "max", "min", "reverse",
    "safe", "sort", "string", "striptags", "templatize_part", "title", "trim", "truncate", "unique", "upper",
    "urlencode", "wordcount", "xmlattr",
})
