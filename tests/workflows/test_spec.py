from __future__ import annotations

import pytest

from workflows.errors import IssueCode, WorkflowInvalid
from workflows.spec import parse_definition, to_yaml

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


def test_hayhooks_inputs_accept_a_string_or_a_list():
    spec = parse_definition(f"""
components:
  p: {{type: {PROMPT}, init_parameters: {{template: "{{{{ q }}}}"}}}}
inputs:
  q: p.q
  both: [p.q, p.template]
outputs:
  prompt: p.prompt
""")
    assert spec.inputs == {"q": ["p.q"], "both": ["p.q", "p.template"]}
    assert spec.outputs == {"prompt": "p.prompt"}


def test_duplicate_component_names_are_refused_with_the_name_and_line():
    with pytest.raises(WorkflowInvalid) as err:
        parse_definition(f"""
components:
  p: {{type: {PROMPT}}}
  p: {{type: {PROMPT}}}
""")
    issue = err.value.issues[0]
    assert issue.code == IssueCode.DUPLICATE_NAME
    assert issue.node == "p"
    assert "line 4" in issue.message and "unique name" in issue.message


@pytest.mark.parametrize("text", ["- just\n- a list\n", "components: [", "42"])
def test_non_mapping_or_broken_yaml_is_a_parse_error(text):
    with pytest.raises(WorkflowInvalid) as err:
        parse_definition(text)
    assert err.value.issues[0].code == IssueCode.PARSE


def test_wrong_shapes_name_the_field():
    with pytest.raises(WorkflowInvalid) as err:
        parse_definition("components:\n  p: {init_parameters: {}}\nconnections: [{sender: a}]\n")
    fields = {issue.field for issue in err.value.issues}
    assert "components.p.type" in fields
    assert "connections.0.receiver" in fields
    assert any(issue.node == "p" for issue in err.value.issues)


def test_python_yaml_tags_are_not_constructed():
    with pytest.raises(WorkflowInvalid) as err:
        parse_definition("components: !!python/object/apply:os.system ['touch /tmp/pwned']\n")
    assert err.value.issues[0].code == IssueCode.PARSE


def test_to_yaml_puts_inputs_and_outputs_at_top_level_and_canvas_under_metadata():
    spec = parse_definition(f"""
components:
  p: {{type: {PROMPT}, init_parameters: {{template: "{{{{ q }}}}"}}}}
inputs: {{q: p.q}}
outputs: {{prompt: p.prompt}}
metadata: {{stackyard: {{positions: {{p: [10, 20]}}}}}}
""")
    text = to_yaml(spec)
    again = parse_definition(text)
    assert again == spec
    assert again.canvas == {"positions": {"p": [10, 20]}}
    assert text.index("components:") < text.index("inputs:")
