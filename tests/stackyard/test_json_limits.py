"""JSON from outside parses with a nesting limit, however deep the text nests (stackyard/json_limits.py)."""

from __future__ import annotations

import json

import pytest

from stackyard.json_limits import MAX_JSON_DEPTH, JsonTooDeep, loads, too_deep


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 900, 200_000])
def test_json_nested_past_the_limit_is_refused_without_recursing(depth):
    with pytest.raises(JsonTooDeep, match=f"more than {MAX_JSON_DEPTH} levels deep"):
        loads("[" * depth + "]" * depth)


def test_json_up_to_the_limit_parses_and_malformed_json_is_a_value_error():
    assert loads("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH) is not None
    assert not too_deep({"a": [1, {"b": []}]}, limit=4) and too_deep({"a": [1, {"b": []}]}, limit=3)
    with pytest.raises(json.JSONDecodeError):
        loads("{bad")
