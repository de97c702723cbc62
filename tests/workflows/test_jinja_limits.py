"""Templates whose compile-time constant folding would be huge are refused fast; ordinary ones pass.

Jinja folds constant expressions while it compiles, and Haystack compiles in the components' ``__init__``,
so these would otherwise cost seconds to minutes (or gigabytes) in whatever process validates them.
"""

from __future__ import annotations

import time

import pytest
import yaml
from jinja2 import nodes

from workflows.errors import IssueCode, WorkflowInvalid
from workflows.io import import_text
from workflows.jinja_limits import TemplateTooCostly, parse_bounded, template_environment
from workflows.templates import template_names, template_path

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
CHAT_PROMPT = "haystack.components.builders.chat_prompt_builder.ChatPromptBuilder"
ROUTER = "haystack.components.routers.conditional_router.ConditionalRouter"
FAST = 1.0  # seconds; unchecked, the first of these took 5-12 s and `9 ** (9 ** 8)` minutes


@pytest.fixture(scope="module", autouse=True)
def environment_loaded() -> None:
    template_environment()  # imports Haystack's Jinja extensions once, outside the timed part


def refused(template: str) -> str:
    started = time.perf_counter()
    with pytest.raises(TemplateTooCostly) as err:
        parse_bounded(template)
    assert time.perf_counter() - started < FAST
    return str(err.value)


@pytest.mark.parametrize("template", [
    "{{ (9 ** (9 ** 7)) % 7 }}",                  # the 25-byte template from the issue
    "{{ 9 ** (9 ** 8) }}",
    "{{ (2 ** 4000) * (2 ** 4000) }}",
    "{{ 0x" + "f" * 5000 + " }}",                 # a literal: hex digits have no conversion limit
])
def test_huge_numbers_are_refused(template):
    message = refused(template)
    assert message.startswith("computes a number/string too large to render (line 1: ")
    assert "4,096 bits" in message and "shorten the expression" in message


@pytest.mark.parametrize("template,needle", [
    ("{{ 'x' * 10**9 }}", "'x' * 1000000000"),
    ("{{ [[1] * 1000] * 1000 }}", "* 1000"),
    ("{{ ((('ab' * 300) * 300) * 300) }}", "* 300"),
    ("{{ 'a'|center(10**9) }}", "the filter 'center' on 'a'"),
    ("{{ '%0999999999d' % 1 }}", "% 1"),
    ("{{ '%*d' % (10**9, 1) }}", "'%*d' %"),
    ("{{ '%.999999d'|format(1) }}", "the filter 'format'"),
    ("{{ ('a' * 1000)|replace('', 'b' * 1000) }}", "the filter 'replace'"),
    ("{{ [1]|batch(10**9, 0)|list }}", "the filter 'batch'"),
    ("{{ [1]|slice(10**9)|list }}", "the filter 'slice'"),
    ("{{ ('a' * 99999)|list|join(', ') }}", "the filter 'join'"),
    ("{{ {'a': 'x' * 90000}|tojson(indent=10) }}", "the filter 'tojson'"),
    ("{{ 12345|round(-10**9) }}", "the filter 'round'"),
    ("{{ 'x' * 99999 ~ 'y' * 99999 }}", "over 100,000"),
    ("{{ 'x' * 99999 }}" * 11, "add up to over 1,000,000"),
])
def test_huge_strings_and_lists_are_refused(template, needle):
    message = refused(template)
    assert "too large to render" in message and needle in message


@pytest.mark.parametrize("template", [
    # Jinja folds every constant sub-expression wherever it sits, even where it could never render.
    "{{ question ~ ('x' * 10**9) }}",
    "{% if question %}{{ [1, 9 ** (9 ** 7)] }}{% endif %}",
    "{{ question if question else 9 ** (9 ** 7) }}",
    "{{ false and 9 ** (9 ** 7) }}",
    "{% set big = 9 ** (9 ** 7) %}{{ question }}",
    "{% macro m(a=9 ** (9 ** 7)) %}{{ a }}{% endmacro %}",
    "{% for d in documents if d.score > 9 ** (9 ** 7) %}{{ d.content }}{% endfor %}",
    "{{ question|default('a'|center(10**9)) }}",
    "{{ documents[0].meta[9 ** (9 ** 7)] }}",
    "{% message role='user' %}{{ 9 ** (9 ** 7) }}{% endmessage %}",   # ChatPromptBuilder's own tag
])
def test_nested_constants_are_refused(template):
    assert "too large to render" in refused(template)


@pytest.mark.parametrize("template,needle", [
    # Filters on an input are not folded, but a constant argument alone makes every render huge.
    ("{{ question|center(10**9) }}", "the filter 'center' with these arguments"),
    ("{% filter indent(10**9, true) %}{{ question }}{% endfilter %}", "the filter 'indent'"),
    # range() is a call, never folded: the sandbox would stop it at render time, so say so now.
    ("{% for i in range(10**12) %}{{ i }}{% endfor %}", "range() with 1,000,000,000,000 items"),
    ("{{ lipsum(10**6) }}", "lipsum()"),
])
def test_render_time_sizes_known_now_are_refused(template, needle):
    assert needle in refused(template)


def test_templates_too_big_to_compile_quickly_are_refused():
    # Python's compile() of the generated module holds the GIL for as long as it runs.
    assert "over 2,000 tags, expressions and text pieces" in refused("{{ question }}" * 2500)
    parse_bounded("{% for d in documents %}{{ loop.index }}: {{ d.content }}\n{% endfor %}" * 150)


def test_nesting_and_oversized_literals_are_refused_not_crashed():
    assert "nested too deeply" in refused("{{ " + "(" * 300 + "1" + ")" * 300 + " }}")
    assert "over 4,300 digits" in refused("{{ " + "9" * 5000 + " }}")


@pytest.mark.parametrize("template", [
    "{{ question }}",
    "{{ 2 ** 10 }}",
    "{{ 9 ** 9 ** 7 }}",              # Jinja's ** is left-associative: (9 ** 9) ** 7, a 200-bit number
    "{{ 2 ** 4000 }}",
    "{{ 'x' * 1000 }}{{ '-' * 80 }}",
    "{% for d in documents %}{{ loop.index }}. {{ d.content | truncate(200) }}\n{% endfor %}",
    "{% for i in range(10) %}{{ i }}{% endfor %}",
    "{{ '%.2f'|format(score) }} {{ '%s-%s' % (1, 2) }} {{ (['a', 'b'] * 3)|join(', ') }}",
    "{{ replies[0].text | lower | trim in ['positive', 'negative', 'neutral'] }}",
    "{% message role='system' %}Answer briefly.{% endmessage %}{% message role='user' %}{{ query }}{% endmessage %}",
    "{{ question|center(40) }} {{ [1, 2, 3]|batch(2, 0)|list }} {{ 3.14159|round(2) }} {{ lipsum(2) }}",
])
def test_ordinary_templates_pass(template):
    started = time.perf_counter()
    parse_bounded(template)
    assert time.perf_counter() - started < FAST


def test_folding_matches_jinja():
    folded = parse_bounded("{{ 2 ** 10 }}{{ 'ab' * 2 }}{{ question ~ ('-' * 3) }}")
    consts = [node.value for node in folded.find_all(nodes.Const)]
    assert consts == [1024, "abab", "---"]


def test_every_starter_template_passes():
    def strings(value):
        if isinstance(value, str):
            yield value
        elif isinstance(value, dict):
            for item in value.values():
                yield from strings(item)
        elif isinstance(value, list):
            for item in value:
                yield from strings(item)

    texts = [text for name in template_names() for text in strings(yaml.safe_load(template_path(name).read_text()))
             if "{{" in text or "{%" in text]
    assert texts
    for text in texts:
        parse_bounded(text)


def one_node(type_: str, params: dict) -> str:
    return yaml.safe_dump({"components": {"n": {"type": type_, "init_parameters": params}}})


@pytest.mark.parametrize("type_,params,spot", [
    (PROMPT, {"template": "{{ (9 ** (9 ** 7)) % 7 }}"}, "template"),
    (CHAT_PROMPT, {"template": [{"role": "user", "content": [{"text": "{{ 'x' * 10**9 }}"}]}]},
     "template[0].content[0].text"),
    (CHAT_PROMPT, {"template": "{% message role='user' %}{{ 9 ** (9 ** 7) }}{% endmessage %}"}, "template"),
    (ROUTER, {"routes": [{"condition": "{{ (9 ** (9 ** 7)) % 7 == 1 }}", "output": "{{ q }}",
                          "output_name": "a", "output_type": "str"}]}, "routes[0].condition"),
    (ROUTER, {"routes": [{"condition": "{{ true }}", "output": "{{ q|center(10**9) }}",
                          "output_name": "a", "output_type": "str"}]}, "routes[0].output"),
])
def test_a_workflow_with_such_a_template_is_refused_fast_and_pinned(type_, params, spot):
    started = time.perf_counter()
    with pytest.raises(WorkflowInvalid) as err:
        import_text(one_node(type_, params))
    assert time.perf_counter() - started < FAST
    issue = err.value.issues[0]
    param = spot.split("[")[0]
    assert (issue.code, issue.node, issue.port) == (IssueCode.DANGEROUS_PARAM, "n", param)
    assert issue.field == f"components.n.init_parameters.{spot}"
    assert f"Node 'n': the template in '{spot}' computes a number/string too large to render" in issue.message


def test_private_attributes_are_seen_after_folding():
    with pytest.raises(WorkflowInvalid) as err:
        import_text(one_node(PROMPT, {"template": "{{ ''['__cla' ~ 'ss__'] }}"}))
    assert "private attribute '__class__'" in err.value.issues[0].message
