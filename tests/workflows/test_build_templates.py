"""A template handed to a prompt builder at run time (its ``template`` input) is checked before the worker
compiles it, as a saved one is: a run input cannot make a worker fold a huge number."""

from __future__ import annotations

import time

import pytest

from workflows.execute import run_pipeline
from workflows.spec import spec_from_dict
from workflows.validation import build_pipeline, validate

HUGE = "{{ (9 ** (9 ** 7)) % 7 }}"    # 5-12 s to compile when unchecked; 9 ** (9 ** 8) takes minutes
BUILDERS = {"prompt": "haystack.components.builders.prompt_builder.PromptBuilder",
            "chat": "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder"}


def spec(kind: str):
    data = {"components": {"p": {"type": BUILDERS[kind], "init_parameters": {
                "template": "Hello {{ name }}" if kind == "prompt" else [{"role": "user", "content": [{"text": "Hello {{ name }}"}]}],
                "required_variables": "*"}}},
            "connections": [],
            "inputs": {"name": ["p.name"], "template": ["p.template"]},
            "outputs": {"out": "p.prompt"}}
    loaded = spec_from_dict(data)
    assert validate(loaded) == []
    return loaded


def as_input(kind: str, text: str):
    if kind == "prompt":
        return text
    from haystack.dataclasses import ChatMessage

    return [ChatMessage.from_user(text)]


@pytest.mark.parametrize("kind", ["prompt", "chat"])
def test_a_costly_template_given_at_run_time_is_refused_before_it_compiles(kind: str):
    loaded = spec(kind)
    pipeline = build_pipeline(loaded)
    started = time.monotonic()
    with pytest.raises(Exception, match="template this node was given to run computes a number/string too large") as caught:
        run_pipeline(loaded, pipeline, {"name": "x", "template": as_input(kind, HUGE)})
    assert time.monotonic() - started < 1.0, caught.value
    ok = run_pipeline(loaded, pipeline, {"name": "Ada", "template": as_input(kind, "Hi {{ name }}")})
    assert "Hi Ada" in str(ok["out"])


def test_every_text_part_of_a_chat_template_is_checked():
    from haystack.dataclasses import ChatMessage, TextContent

    loaded = spec("chat")
    parts = [ChatMessage.from_user(content_parts=[TextContent("Hi {{ name }}"), TextContent(HUGE)])]
    started = time.monotonic()
    with pytest.raises(Exception, match="too large"):
        run_pipeline(loaded, build_pipeline(loaded), {"name": "x", "template": parts})
    assert time.monotonic() - started < 1.0
