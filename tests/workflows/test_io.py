"""Import and export of Haystack and Hayhooks files: files written by Haystack's own ``dumps()`` and Hayhooks-style
files import as they are, with their inputs and outputs inferred where they declare none, and round-trip."""

from __future__ import annotations

import pytest
import yaml
from haystack import Pipeline
from haystack.marshal.yaml import YamlDumper

from workflows.errors import IssueCode, WorkflowInvalid
from workflows.execute import run_pipeline
from workflows.io import export_yaml, import_text
from workflows.validation import build_pipeline

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
GENERATOR = "haystack.components.generators.chat.openai.OpenAIChatGenerator"


def rag_with_open_query() -> Pipeline:
    """A keyword RAG as Haystack's tutorials build it: the question goes to the retriever and the prompt."""
    from haystack.components.builders import ChatPromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.dataclasses import ChatMessage
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import Secret

    pipe = Pipeline()
    pipe.add_component("retriever", InMemoryBM25Retriever(document_store=InMemoryDocumentStore()))
    pipe.add_component("prompt_builder", ChatPromptBuilder(
        template=[ChatMessage.from_user("{% for d in documents %}{{ d.content }}{% endfor %} Q: {{ query }}")],
        required_variables="*"))
    pipe.add_component("llm", OpenAIChatGenerator(model="llama3", api_base_url="http://ollama:11434/v1",
                                                  api_key=Secret.from_env_var("OLLAMA_KEY", strict=False)))
    pipe.connect("retriever.documents", "prompt_builder.documents")
    pipe.connect("prompt_builder.prompt", "llm.messages")
    return pipe


def preprocessing() -> Pipeline:
    from haystack.components.preprocessors import DocumentCleaner, DocumentSplitter

    pipe = Pipeline()
    pipe.add_component("cleaner", DocumentCleaner())
    pipe.add_component("splitter", DocumentSplitter(split_by="word", split_length=50))
    pipe.connect("cleaner.documents", "splitter.documents")
    return pipe


def two_prompts() -> Pipeline:
    from haystack.components.builders import PromptBuilder

    pipe = Pipeline()
    pipe.add_component("short", PromptBuilder(template="In brief: {{ topic }}", required_variables="*"))
    pipe.add_component("long", PromptBuilder(template="At length: {{ topic }}", required_variables="*"))
    return pipe


@pytest.mark.parametrize(("build", "inputs", "outputs"), [
    (rag_with_open_query, {"query": ["prompt_builder.query", "retriever.query"]},  # in the file's order
     {"replies": "llm.replies"}),
    (preprocessing, {"documents": ["cleaner.documents"]}, {"documents": "splitter.documents"}),
    (two_prompts, {"topic": ["long.topic", "short.topic"]}, {"long_prompt": "long.prompt", "short_prompt": "short.prompt"}),
], ids=["rag-open-query", "preprocessing", "shared-output-names"])
def test_a_plain_dumps_imports_with_its_open_sockets_as_inputs_and_outputs(ollama_operator, build, inputs, outputs):
    pipe = build()
    text = pipe.dumps()
    assert "inputs:" not in text  # what Haystack writes declares none
    spec = import_text(text)
    assert spec.inputs == inputs and spec.outputs == outputs
    # Mandatory open sockets only, as Pipeline.inputs() marks them: optional ones (top_k, filters) keep defaults.
    mandatory = {f"{name}.{socket}" for name, sockets in pipe.inputs().items()
                 for socket, about in sockets.items() if about["is_mandatory"]}
    assert {ref for refs in spec.inputs.values() for ref in refs} == mandatory
    exported = export_yaml(spec)
    assert Pipeline.loads(exported).to_dict()["components"] == pipe.to_dict()["components"]
    assert import_text(exported) == spec


def test_the_inferred_interface_runs_as_pipeline_run_would():
    spec = import_text(two_prompts().dumps())
    outputs = run_pipeline(spec, build_pipeline(spec), {"topic": "tides"})
    assert outputs == {"long_prompt": "At length: tides", "short_prompt": "In brief: tides"}


def test_declared_inputs_are_kept_and_only_the_missing_outputs_are_inferred(ollama_operator):
    text = preprocessing().dumps() + "inputs:\n  docs: cleaner.documents\n"
    spec = import_text(text)
    assert spec.inputs == {"docs": ["cleaner.documents"]} and spec.outputs == {"documents": "splitter.documents"}


def test_haystacks_tuple_tag_loads_and_no_other_python_tag_does():
    text = yaml.dump({"components": {"p": {"type": PROMPT, "init_parameters": {
        "template": "{{ a }} {{ b }}", "variables": ("a", "b"), "required_variables": "*"}}}, "connections": []},
        Dumper=YamlDumper)
    assert "!!python/tuple" in text  # as Haystack's own dumps() writes a tuple
    spec = import_text(text)
    assert spec.components["p"].init_parameters["variables"] == ["a", "b"]
    assert spec.inputs == {"a": ["p.a"], "b": ["p.b"]}
    for tag in ("!!python/object/apply:os.system ['id']", "!!python/name:os.system ''", "!!python/list [1]"):
        with pytest.raises(WorkflowInvalid) as err:
            import_text(text.replace("- a\n", f"- {tag}\n", 1))
        assert err.value.issues[0].code == IssueCode.PARSE


HAYHOOKS = f"""
components:
  prompt: {{type: {PROMPT}, init_parameters: {{template: "Answer: {{{{ question }}}}", required_variables: "*"}}}}
  llm:
    type: {GENERATOR}
    init_parameters:
      model: llama3
      api_base_url: http://ollama:11434/v1
      api_key: {{type: env_var, env_vars: [OLLAMA_KEY], strict: false}}
connections:
- {{sender: prompt.prompt, receiver: llm.messages}}
inputs:
  question: prompt.question
outputs:
  answer: [llm.replies]
streaming_components: STREAMING
"""


@pytest.mark.parametrize("streaming", ["[llm]", "all"])
def test_hayhooks_list_outputs_and_streaming_components_import_and_round_trip(ollama_operator, streaming):
    spec = import_text(HAYHOOKS.replace("STREAMING", streaming))
    assert spec.outputs == {"answer": "llm.replies"}
    assert spec.streaming_components == (["llm"] if streaming == "[llm]" else "all")
    exported = export_yaml(spec)
    assert yaml.safe_load(exported)["streaming_components"] == spec.streaming_components
    assert import_text(exported) == spec
    assert set(Pipeline.loads(exported).to_dict()["components"]) == {"prompt", "llm"}


@pytest.mark.parametrize(("old", "new", "field", "says"), [
    ("[llm.replies]", "[llm.replies, llm.meta]", "outputs.answer", "declare one output per socket"),
    ("streaming_components: all", "streaming_components: [generator]", "streaming_components[0]",
     "no component named 'generator'"),
    ("  question: prompt.question\n", "  question: prompt.question\n  again: prompt.question\n", "inputs.again",
     "already fed by input 'question'"),
], ids=["output-lists-two-sockets", "unknown-streaming-component", "two-inputs-one-socket"])
def test_hayhooks_files_that_cannot_mean_one_thing_are_refused_naming_the_field(ollama_operator, old, new, field, says):
    text = HAYHOOKS.replace("STREAMING", "all")
    with pytest.raises(WorkflowInvalid) as err:
        import_text(text.replace(old, new))
    [issue] = err.value.issues
    assert issue.field == field and says in issue.message, issue
