"""Size and depth limits of a workflow document, checked before the work: YAML alias expansion ("billion
laughs"), nesting (PyYAML's composer, pydantic, deepcopy and JSON all recurse) and unreadable values
give a 4xx Issue naming the limit and the fix, never a 500 or a multi-megabyte stored version."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.support.workflows import GREET_YAML as GREET
from tests.support.workflows import billion_laughs
from workflows.errors import IssueCode, WorkflowInvalid
from workflows.spec import MAX_DEPTH, load_document, parse_definition, spec_from_dict, to_json

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


def refused(text: str | bytes) -> WorkflowInvalid:
    # Refused before the work: this process's CPU time, not the wall clock (a full suite shares 2 cores, and a
    # wall-clock bound failed at 1.3 s there); expanding a billion laughs would take minutes and gigabytes.
    started = time.process_time()
    with pytest.raises(WorkflowInvalid) as err:
        load_document(text)
    assert time.process_time() - started < 2.0
    return err.value


def test_billion_laughs_is_refused_before_it_expands():
    text = billion_laughs()
    assert len(text) < 1000
    issue = refused(text).issues[0]
    assert issue.code == IssueCode.PARSE
    assert "YAML aliases expand this document" in issue.message and "100,000 elements added by aliases" in issue.message
    assert "write the repeated parts out or drop the anchors" in issue.message


def test_a_modest_alias_is_still_fine():
    text = GREET + "metadata:\n  a: &shared {title: x, tags: [a, b]}\n  b: *shared\n"
    spec = parse_definition(text)
    assert spec.metadata["b"] == {"title": "x", "tags": ["a", "b"]}
    small = billion_laughs(levels=3)   # 9 ** 3 = 729 strings written out
    assert len(to_json(parse_definition(small))) < 20_000


def test_an_alias_to_its_own_container_is_refused():
    for text in ("components: {}\nmetadata: &a [*a]\n", "components: {}\nmetadata: &a {x: *a}\n"):
        issue = refused(text).issues[0]
        assert issue.code == IssueCode.PARSE and "alias to itself" in issue.message


@pytest.mark.parametrize("text", [
    "a: " + "[" * 100_000,                                   # PyYAML's composer recursed per level
    "a: " + "[" * 500 + "]" * 500,
    "a: " + "{b: " * 300 + "1" + "}" * 300,
    "a:\n" + "".join("  " * i + "- \n" for i in range(1, 200)),
    "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
])
def test_deep_yaml_is_refused_with_the_limit(text):
    issue = refused(text).issues[0]
    assert issue.code == IssueCode.PARSE
    assert f"more than {MAX_DEPTH} levels deep" in issue.message and "Flatten" in issue.message


def test_depth_through_aliases_counts_as_written_out():
    lines = ["components: {}", "metadata:", "  d0: &d0 [x]"]
    lines += [f"  d{i}: &d{i} [*d{i - 1}]" for i in range(1, 100)]   # each line nests one level deeper
    issue = refused("\n".join(lines) + "\n").issues[0]
    assert f"more than {MAX_DEPTH} levels deep" in issue.message


def test_the_depth_limit_itself_is_allowed():
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)
    assert load_document(f"a: {nested}\n")["a"] is not None


def test_deep_init_parameters_from_json_are_a_shape_issue():
    value: object = "x"
    for _ in range(500):
        value = {"k": value}
    data = {"components": {"n": {"type": PROMPT, "init_parameters": {"template": "{{ q }}", "extra": value}}}}
    with pytest.raises(WorkflowInvalid) as err:
        spec_from_dict(data)
    issue = err.value.issues[0]
    assert issue.code == IssueCode.SHAPE and issue.node == "n"
    assert issue.field.startswith("components.n.init_parameters.extra.k")
    assert f"more than {MAX_DEPTH} levels deep" in issue.message


def test_deep_lists_from_python_are_refused_without_recursing():
    value: list = []
    for _ in range(100_000):
        value = [value]
    with pytest.raises(WorkflowInvalid) as err:
        spec_from_dict({"components": {}, "metadata": {"deep": value}})
    assert err.value.issues[0].field.startswith("metadata.deep.0")


def test_a_document_over_the_size_limit_is_refused_unparsed():
    issue = refused("a: " + "x" * (2 * 1024 * 1024)).issues[0]
    assert issue.code == IssueCode.PARSE and "the limit is 2,097,152" in issue.message


@pytest.mark.parametrize("text,needle", [
    ("a: 2001-13-01\n", "month must be in 1..12"),
    ("a: " + "9" * 5000 + "\n", "4300 digits"),
    ("? [a, b]\n: 1\n", "unhashable key"),
])
def test_unreadable_values_are_parse_errors(text, needle):
    issue = refused(text).issues[0]
    assert issue.code == IssueCode.PARSE and needle in issue.message


def test_the_loader_still_refuses_python_tags_and_duplicates():
    assert refused("a: !!python/object/apply:os.system ['true']\n").issues[0].code == IssueCode.PARSE
    assert refused(yaml.safe_dump({"components": {}}) + "components: {}\n").issues[0].code == IssueCode.DUPLICATE_NAME
