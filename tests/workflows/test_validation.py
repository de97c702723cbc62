"""Every validation error class, asserted on its node, port and message."""

from __future__ import annotations

import pytest

from workflows.errors import IssueCode
from workflows.spec import spec_from_dict
from workflows.validation import validate

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
TEXT_EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
                 "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")
RETRIEVER = "milvus_haystack.milvus_embedding_retriever.MilvusEmbeddingRetriever"
JOINER = "haystack.components.joiners.branch.BranchJoiner"
MILVUS = {"type": "milvus_haystack.document_store.MilvusDocumentStore", "init_parameters": {"collection_name": "docs"}}


def issues_of(data):
    return validate(spec_from_dict(data))


def only(issues, code):
    found = [issue for issue in issues if issue.code == code]
    assert found, f"no {code} among {issues}"
    return found[0]


def rag(**overrides):
    data = {
        "components": {
            "embed": {"type": TEXT_EMBEDDER, "init_parameters": {"model": "sentence-transformers/all-MiniLM-L6-v2"}},
            "retrieve": {"type": RETRIEVER, "init_parameters": {"document_store": MILVUS, "top_k": 2}},
            "prompt": {"type": PROMPT, "init_parameters": {"template": "{% for d in documents %}{{ d.content }}{% endfor %} {{ question }}"}},
        },
        "connections": [
            {"sender": "embed.embedding", "receiver": "retrieve.query_embedding"},
            {"sender": "retrieve.documents", "receiver": "prompt.documents"},
        ],
        "inputs": {"query": ["embed.text", "prompt.question"]},
        "outputs": {"prompt": "prompt.prompt"},
    }
    data.update(overrides)
    return data


def test_a_correct_rag_workflow_has_no_issues_and_touches_no_milvus():
    # Validation must not connect to Milvus: no server runs in this test.
    assert issues_of(rag()) == []


def test_unknown_component_type_is_pinned_to_its_node():
    data = rag()
    data["components"]["mystery"] = {"type": "haystack.components.nothing.Here"}
    issue = only(issues_of(data), IssueCode.NOT_ALLOWED)
    assert issue.node == "mystery" and "STACKYARD_ALLOWED_COMPONENTS" in issue.message


def test_non_class_path_type():
    data = rag()
    data["components"]["weird"] = {"type": "not a class"}
    issue = only(issues_of(data), IssueCode.UNKNOWN_COMPONENT)
    assert issue.node == "weird" and "class path" in issue.message


def test_allowlisted_by_setting_but_missing_class(monkeypatch):
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_ALLOWED_COMPONENTS", "haystack.components.builders.prompt_builder.NoSuchBuilder")
    reset_settings_cache()
    try:
        data = rag()
        data["components"]["x"] = {"type": "haystack.components.builders.prompt_builder.NoSuchBuilder"}
        issue = only(issues_of(data), IssueCode.UNKNOWN_COMPONENT)
        assert issue.node == "x" and "cannot be loaded" in issue.message
    finally:
        monkeypatch.delenv("STACKYARD_ALLOWED_COMPONENTS")
        reset_settings_cache()


def test_removed_2x_component_names_its_3x_replacement():
    data = rag()
    data["components"]["llm"] = {"type": "haystack.components.generators.openai.OpenAIGenerator", "init_parameters": {}}
    issue = only(issues_of(data), IssueCode.REMOVED_COMPONENT)
    assert issue.node == "llm"
    assert "removed in Haystack 3.x" in issue.message and "OpenAIChatGenerator" in issue.message


def test_unknown_init_parameter_lists_the_valid_ones():
    data = rag()
    data["components"]["retrieve"]["init_parameters"]["topk"] = 3
    issue = only(issues_of(data), IssueCode.BAD_PARAM)
    assert (issue.node, issue.port) == ("retrieve", "topk")
    assert "top_k" in issue.message


def test_a_node_that_fails_to_build_leaves_the_inputs_it_feeds_fed():
    data = rag()
    data["components"]["retrieve"]["init_parameters"]["topk"] = 3  # prompt.documents is fed by retrieve
    assert [(issue.code, issue.node) for issue in issues_of(data)] == [(IssueCode.BAD_PARAM, "retrieve")]


def test_init_parameter_rejected_by_the_component():
    data = rag()
    data["components"]["split"] = {"type": "haystack.components.preprocessors.document_splitter.DocumentSplitter",
                                   "init_parameters": {"split_length": -5}}
    issue = only(issues_of(data), IssueCode.BAD_PARAM)
    assert issue.node == "split" and "DocumentSplitter" in issue.message


def test_missing_mandatory_input_names_node_and_port():
    data = rag(inputs={"query": ["embed.text"]})
    issue = only(issues_of(data), IssueCode.MISSING_INPUT)
    assert (issue.node, issue.port) == ("prompt", "question")
    assert "declare a workflow input" in issue.message


def test_type_mismatch_uses_haystacks_connect_check():
    data = rag()
    data["connections"].append({"sender": "embed.embedding", "receiver": "retrieve.top_k"})
    issue = only(issues_of(data), IssueCode.TYPE_MISMATCH)
    assert (issue.node, issue.port) == ("retrieve", "top_k")
    assert "embedding" in issue.message and "top_k" in issue.message


@pytest.mark.parametrize("edge,node,port", [
    ({"sender": "ghost.out", "receiver": "prompt.question"}, "ghost", "out"),
    ({"sender": "retrieve.documents", "receiver": "prompt.nothing"}, "prompt", "nothing"),
    ({"sender": "retrieve.docs", "receiver": "prompt.question"}, "retrieve", "docs"),
])
def test_dangling_edges(edge, node, port):
    data = rag(inputs={"query": ["embed.text"]})
    data["connections"].append(edge)
    issue = only(issues_of(data), IssueCode.DANGLING_EDGE)
    assert (issue.node, issue.port) == (node, port)


def test_second_edge_into_a_single_input():
    data = rag(inputs={"query": ["embed.text"]})
    data["components"]["other"] = {"type": PROMPT, "init_parameters": {"template": "x"}}
    data["connections"] += [{"sender": "other.prompt", "receiver": "prompt.question"},
                            {"sender": "retrieve.documents", "receiver": "prompt.question"}]
    issue = only(issues_of(data), IssueCode.DANGLING_EDGE)
    assert (issue.node, issue.port) == ("prompt", "question") and "joiner" in issue.message


def test_component_name_with_a_dot_is_refused():
    data = rag()
    data["components"]["a.b"] = {"type": PROMPT, "init_parameters": {"template": "x"}}
    issue = only(issues_of(data), IssueCode.SHAPE)
    assert issue.node == "a.b" and "a_b" in issue.message


@pytest.mark.parametrize("inputs,outputs,code,field", [
    ({"query": ["embed.text", "prompt.question", "nobody.text"]}, {"prompt": "prompt.prompt"}, IssueCode.BAD_INPUT_MAPPING, "inputs.query"),
    ({"query": ["embed.text", "prompt.question", "prompt.nope"]}, {"prompt": "prompt.prompt"}, IssueCode.BAD_INPUT_MAPPING, "inputs.query"),
    ({"query": ["embed.text", "prompt.question"]}, {"answer": "prompt.answer"}, IssueCode.BAD_OUTPUT_MAPPING, "outputs.answer"),
    ({"query": ["embed.text", "prompt.question"]}, {"answer": "llm.replies"}, IssueCode.BAD_OUTPUT_MAPPING, "outputs.answer"),
])
def test_declared_inputs_and_outputs_pointing_nowhere(inputs, outputs, code, field):
    issue = only(issues_of(rag(inputs=inputs, outputs=outputs)), code)
    assert issue.field == field and "has no" in issue.message or "no component named" in issue.message


def test_declared_input_on_a_port_an_edge_already_feeds():
    data = rag(inputs={"query": ["embed.text", "prompt.question", "prompt.documents"]})
    issue = only(issues_of(data), IssueCode.BAD_INPUT_MAPPING)
    assert (issue.node, issue.port) == ("prompt", "documents") and "already fed by 'retrieve'" in issue.message


def loop(max_runs=None):
    data = {
        "components": {
            "join": {"type": JOINER, "init_parameters": {"type_": "str"}},
            "route": {"type": "haystack.components.routers.conditional_router.ConditionalRouter", "init_parameters": {
                "routes": [{"condition": "{{ value|length > 10 }}", "output": "{{ value }}", "output_name": "done", "output_type": "str"},
                           {"condition": "{{ true }}", "output": "{{ value ~ 'x' }}", "output_name": "again", "output_type": "str"}]}},
        },
        "connections": [{"sender": "join.value", "receiver": "route.value"}, {"sender": "route.again", "receiver": "join.value"}],
        "inputs": {"start": ["join.value"]},
        "outputs": {"done": "route.done"},
    }
    if max_runs:
        data["max_runs_per_component"] = max_runs
    return data


def test_cycle_without_a_run_limit():
    issue = only(issues_of(loop()), IssueCode.UNBOUNDED_CYCLE)
    assert issue.node in {"join", "route"} and "max_runs_per_component" in issue.message
    assert "→" in issue.message


def test_cycle_with_a_run_limit_is_valid():
    assert issues_of(loop(max_runs=20)) == []
