"""Version diffs and the node-ports cache (workflows.graph)."""

from __future__ import annotations

from workflows.graph import node_ports, spec_diff

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


def spec(**changes):
    base = {"components": {"a": {"type": PROMPT, "init_parameters": {"template": "{{ x }}"}},
                           "b": {"type": PROMPT, "init_parameters": {"template": "{{ y }}"}}},
            "connections": [{"sender": "a.prompt", "receiver": "b.y"}],
            "inputs": {"x": ["a.x"]}, "outputs": {"out": "b.prompt"},
            "metadata": {"stackyard": {"positions": {"a": [0, 0], "b": [300, 0]}, "notes": []}}}
    base.update(changes)
    return base


def test_identical_specs_have_no_changes():
    diff = spec_diff(spec(), spec())
    assert diff["summary"] == "no changes"
    assert not diff["params"] and not diff["moved"] and not diff["notes_changed"]


def test_nodes_params_edges_io_and_layout_are_reported():
    after = spec(connections=[], inputs={"x": ["a.x"], "y": ["b.y"]}, outputs={})
    after["components"]["c"] = {"type": PROMPT, "init_parameters": {}}
    after["components"]["a"] = {"type": PROMPT, "init_parameters": {"template": "{{ x }}!", "required_variables": "*"}}
    del after["components"]["b"]
    after["components"]["b"] = {"type": "other.Type", "init_parameters": {}}
    after["metadata"] = {"stackyard": {"positions": {"a": [10, 0], "b": [300, 0]}, "notes": [{"id": "n", "text": "hi"}]}}
    diff = spec_diff(spec(), after)
    assert diff["nodes"] == {"added": ["c"], "removed": [], "retyped": ["b"]}
    assert [(p["param"], p["before"], p["after"]) for p in diff["params"]] == [
        ("required_variables", None, "*"), ("template", "{{ x }}", "{{ x }}!")]
    assert diff["edges"] == {"added": [], "removed": ["a.prompt → b.y"]}
    assert diff["inputs"]["added"] == ["y"] and diff["outputs"]["removed"] == ["out"]
    assert diff["moved"] == ["a"] and diff["notes_changed"] is True
    assert diff["summary"] == "1 node added, 2 params changed, 1 edge removed, 2 input/outputs changed, layout changed"


def test_the_first_version_has_no_predecessor():
    assert spec_diff(None, spec())["summary"] == "first version"


def test_node_ports_are_cached_by_type_and_params():
    first = node_ports(PROMPT, {"template": "{{ a }}"})
    assert node_ports(PROMPT, {"template": "{{ a }}"}) is first
    assert [p["name"] for p in node_ports(PROMPT, {"template": "{{ b }}"})["inputs"]][0] == "b"
