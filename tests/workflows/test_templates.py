"""Starter templates: they validate, round-trip through plain Haystack, and run offline end to end."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from haystack import Pipeline

from stackyard.processes import STACKYARD
from tests.support.documents import DOCUMENT_FACTS, write_mixed_documents
from tests.support.models import TINY_MODEL_ANSWER
from workflows.execute import run_pipeline
from workflows.io import export_yaml, import_text
from workflows.templates import template_names, template_path
from workflows.validation import build_pipeline, validate

ALLOWED = ["milvus_haystack", "nodes", "knowledge.writer"]
CHAT_MODEL = "Qwen/Qwen2.5-0.5B-Instruct"


def test_the_starters_exist_and_validate():
    assert template_names() == ["agent_search", "agent_workflow", "chat_memory", "classify", "ingest",
                                "ingest_knowledge", "rag_chat", "rag_rewrite", "summarize"]
    for name in template_names():
        assert validate(import_text(template_path(name).read_text())) == []


def _canonical(pipeline: Pipeline) -> dict:
    data = pipeline.to_dict()
    return {"components": data["components"],
            "connections": {(c["sender"], c["receiver"]) for c in data["connections"]}}


@pytest.mark.integration
@pytest.mark.parametrize("name", ["agent_search", "agent_workflow", "chat_memory", "classify", "ingest",
                                  "ingest_knowledge", "rag_chat", "rag_rewrite", "summarize"])
def test_template_round_trips_through_plain_haystack(name, milvus):
    text = template_path(name).read_text()
    spec = import_text(text)
    exported = export_yaml(spec)
    # The file as written, loaded by Haystack directly (with this deployment's URI) ...
    reference = Pipeline.loads(export_yaml(spec.model_validate(__import__("yaml").safe_load(text))), allowed_modules=ALLOWED)
    # ... equals import → export → Pipeline.loads: same components, params and connection set.
    assert _canonical(Pipeline.loads(exported, allowed_modules=ALLOWED)) == _canonical(reference)
    assert import_text(exported) == spec  # and back into Stackyard unchanged (minus the deployment URI)


def test_a_pipeline_built_with_haystacks_api_round_trips_exactly(ollama_operator):
    from haystack.components.builders import PromptBuilder
    from haystack.components.generators.chat import OpenAIChatGenerator
    from haystack.components.preprocessors import DocumentSplitter
    from haystack.components.writers import DocumentWriter
    from haystack.document_stores.in_memory import InMemoryDocumentStore
    from haystack.utils import Secret

    pipe = Pipeline(max_runs_per_component=7, metadata={"owner": "tests"})
    pipe.add_component("prompt", PromptBuilder(template="Summarize: {{ text }}", required_variables=["text"]))
    pipe.add_component("llm", OpenAIChatGenerator(model="llama3", api_base_url="http://ollama:11434/v1",
                                                  api_key=Secret.from_env_var("OLLAMA_KEY", strict=False),
                                                  generation_kwargs={"temperature": 0.1}))
    pipe.add_component("split", DocumentSplitter(split_by="passage", split_length=3))
    pipe.add_component("write", DocumentWriter(document_store=InMemoryDocumentStore(bm25_algorithm="BM25Plus")))
    pipe.connect("prompt.prompt", "llm.messages")
    pipe.connect("split.documents", "write.documents")
    original = pipe.to_dict()

    text = pipe.dumps() + "inputs:\n  text: prompt.text\n  docs: split.documents\noutputs:\n  summary: llm.replies\n"
    spec = import_text(text)
    assert spec.inputs == {"text": ["prompt.text"], "docs": ["split.documents"]}
    assert spec.outputs == {"summary": "llm.replies"}
    again = Pipeline.loads(export_yaml(spec)).to_dict()
    assert again["components"] == original["components"]
    assert again["connections"] == original["connections"]
    assert again["max_runs_per_component"] == 7 and again["metadata"] == {"owner": "tests"}


@pytest.fixture
def indexed(data_dir: Path, milvus: str) -> dict:
    """The ingest template run over a folder of mixed txt/md/html/pdf/docx files."""
    docs = data_dir / "files" / "library"
    write_mixed_documents(docs)
    spec = import_text(template_path("ingest").read_text())
    pipeline = build_pipeline(spec)
    pipeline.warm_up()
    outputs = run_pipeline(spec, pipeline, {"files": ["library"]})
    return {"outputs": outputs, "spec": spec, "pipeline": pipeline}


def _stored(collection: str = "documents") -> list:
    from nodes.stores import milvus_document_store

    return milvus_document_store(collection).filter_documents()


@pytest.mark.integration
def test_ingest_template_indexes_every_file_once(indexed):
    assert indexed["outputs"]["documents_written"] == len(DOCUMENT_FACTS)
    stored = _stored()
    assert len(stored) == len(DOCUMENT_FACTS)
    contents = "\n".join(doc.content for doc in stored)
    for facts in DOCUMENT_FACTS.values():
        assert facts["key"] in contents
    assert {Path(doc.meta["file_path"]).suffix for doc in stored} == {".txt", ".md", ".html", ".pdf", ".docx"}
    # Running it again overwrites by id: still one copy of each.
    again = run_pipeline(indexed["spec"], indexed["pipeline"], {"files": ["library"]})
    assert again["documents_written"] == len(DOCUMENT_FACTS)
    assert sorted(d.id for d in _stored()) == sorted(d.id for d in stored)


@pytest.mark.integration
def test_ingest_refuses_paths_outside_the_files_root(indexed):
    from nodes.errors import FileAccessError

    with pytest.raises(Exception) as err:
        run_pipeline(indexed["spec"], indexed["pipeline"], {"files": ["../../etc"]})
    cause = err.value
    while cause is not None and not isinstance(cause, FileAccessError):
        cause = cause.__cause__
    assert isinstance(cause, FileAccessError) and "files root" in str(cause)


@pytest.mark.integration
def test_rag_template_answers_from_the_right_document(indexed, tiny_model, monkeypatch):
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_MODEL_PATHS", json.dumps({CHAT_MODEL: str(tiny_model)}))
    reset_settings_cache()
    spec = import_text(template_path("rag_chat").read_text())
    pipeline = build_pipeline(spec)
    pipeline.warm_up()
    moonhare = next(f for f in DOCUMENT_FACTS.values() if "moonhare" in f["key"])
    earlier = [{"role": "user", "content": "Tell me about the moonhare."}, {"role": "assistant", "content": "It leaps."}]
    outputs = run_pipeline(spec, pipeline, {"query": "How far can the striped moonhare leap?", "history": earlier})
    assert moonhare["key"] in outputs["documents"][0]["content"]
    prompt = outputs["prompt"]           # chat messages: the documents, the conversation so far, the question
    assert [m["role"] for m in prompt] == ["system", "user", "assistant", "user"]
    assert moonhare["key"] in prompt[0]["text"] and [m["text"] for m in prompt[1:3]] == ["Tell me about the moonhare.",
                                                                                        "It leaps."]
    assert "How far can the striped moonhare leap?" in prompt[-1]["text"]
    assert outputs["answer"][0]["text"] == TINY_MODEL_ANSWER


@pytest.mark.integration
def test_stackyard_run_prints_the_rag_answer(indexed, tiny_model, data_dir):
    env = {**os.environ, "STACKYARD_MODEL_PATHS": json.dumps({CHAT_MODEL: str(tiny_model)}), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run([*STACKYARD, "run", str(template_path("rag_chat")),
                             "--inputs", json.dumps({"query": "What does the marsh quillhog eat?"})],
                            env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = json.loads(result.stdout)
    assert printed["answer"][0]["text"] == TINY_MODEL_ANSWER
    assert "The marsh quillhog eats only blue reeds." in printed["prompt"][0]["text"]


def test_a_new_workflow_from_a_starter_gets_this_machines_generator_and_answers(monkeypatch: pytest.MonkeyPatch):
    """The file names a hub model this machine cannot fetch; the operator's server is used instead, and it is
    admitted without also listing it in STACKYARD_FETCH_ALLOWED_HOSTS."""
    from nodes.models import SERVER_GENERATOR, inventory
    from stackyard.settings import get_settings, reset_settings_cache
    from tests.support.openai_server import ChatServer
    from workflows.templates import starter

    monkeypatch.delenv("STACKYARD_FETCH_ALLOWED_HOSTS", raising=False)
    monkeypatch.setenv("STACKYARD_OLLAMA_URL", "http://127.0.0.1:9")  # no Ollama on this machine
    with ChatServer("a two-sentence summary") as server:
        monkeypatch.setenv("STACKYARD_LLM_SERVERS", json.dumps({"team": server.base_url}))
        reset_settings_cache()
        try:
            generator = inventory(get_settings()).default_generator
            spec = starter("summarize", generator)
            llm = spec.components["llm"]
            assert (llm.type, llm.init_parameters["api_base_url"]) == (SERVER_GENERATOR, server.base_url)
            assert validate(spec) == []
            outputs = run_pipeline(spec, build_pipeline(spec), {"text": "Stackyard builds Haystack workflows."})
            assert outputs["summary"][0]["text"] == "a two-sentence summary"
        finally:
            monkeypatch.delenv("STACKYARD_LLM_SERVERS")
            reset_settings_cache()
    assert starter("summarize", None).components["llm"].init_parameters["model"] == CHAT_MODEL  # none: as written


@pytest.mark.integration
def test_the_rewrite_template_searches_with_a_standalone_query_made_from_the_conversation(indexed, monkeypatch):
    """A follow-up ("How far can it leap?") is rewritten from the turn before into a query naming the moonhare,
    which retrieval then finds; the answer prompt keeps the original question and the conversation."""
    from stackyard.settings import reset_settings_cache
    from tests.support.openai_server import ChatServer
    from workflows.templates import starter

    def script(body: dict) -> str:
        if "standalone search query" in body["messages"][0]["content"]:
            said = " ".join(m["content"] for m in body["messages"][1:])
            return "How far can the striped moonhare leap?" if "moonhare" in said else "unknown"
        return "the answer"

    moonhare = next(f for f in DOCUMENT_FACTS.values() if "moonhare" in f["key"])
    with ChatServer(reply=script) as server:
        monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{server.port}")
        monkeypatch.setenv("TEST_LLM_KEY", "k")
        monkeypatch.setenv("STACKYARD_SECRET_ENV", "TEST_LLM_KEY")
        reset_settings_cache()
        generator = {"type": "haystack.components.generators.chat.openai.OpenAIChatGenerator", "init_parameters": {
            "model": "m", "api_base_url": server.base_url, "api_key": {"type": "env_var", "env_vars": ["TEST_LLM_KEY"],
                                                                     "strict": False}}}
        spec = starter("rag_rewrite", generator)
        pipeline = build_pipeline(spec)
        pipeline.warm_up()
        earlier = [{"role": "user", "content": "Tell me about the striped moonhare."},
                   {"role": "assistant", "content": "It is a hare that leaps."}]
        outputs = run_pipeline(spec, pipeline, {"query": "How far can it leap?", "history": earlier})
        alone = run_pipeline(spec, pipeline, {"query": "How far can it leap?"})
    reset_settings_cache()
    assert outputs["search_query"] == "How far can the striped moonhare leap?"
    assert moonhare["key"] in outputs["documents"][0]["content"]
    assert outputs["prompt"][-1]["text"].startswith("Question: How far can it leap?")
    assert alone["search_query"] == "unknown"          # without the conversation the follow-up names nothing
    assert outputs["answer"][0]["text"] == "the answer"


def _run_starter(name: str, script, inputs: dict, monkeypatch: pytest.MonkeyPatch):
    """Template ``name`` started with the operator's OpenAI-compatible server (the in-test one, answering with
    ``script``) in place of every generator, validated and run on ``inputs``; its outputs and the server."""
    from nodes.models import SERVER_GENERATOR
    from stackyard.settings import reset_settings_cache
    from tests.support.openai_server import ChatServer
    from workflows.templates import starter

    with ChatServer(script) as server:
        monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{server.port}")
        reset_settings_cache()
        try:
            spec = starter(name, {"type": SERVER_GENERATOR, "init_parameters": {
                "model": "local-model", "api_base_url": server.base_url, "max_retries": 0, "timeout": 10}})
            assert validate(spec) == []
            return run_pipeline(spec, build_pipeline(spec), inputs), server
        finally:
            reset_settings_cache()


def test_the_agent_calling_a_workflow_template_gets_the_machines_generator_everywhere_and_answers(
        monkeypatch: pytest.MonkeyPatch):
    """Started with the operator's server, the agent and the summarizer it calls as a tool both use it: the agent
    asks for the tool, the tool's own LLM call summarizes, and the agent answers with that summary."""
    from tests.support.openai_server import ToolCall, tool_steps

    agent = tool_steps([ToolCall("summarize_text", {"text": "Stackyard builds Haystack workflows and runs them."})])

    def script(body: dict):                  # no tools offered: the summarizer workflow's own LLM call
        return agent(body) if body.get("tools") else "Stackyard builds workflows. It runs them."

    outputs, server = _run_starter("agent_workflow", script, {"request": "Summarize: Stackyard builds workflows."},
                                   monkeypatch)
    assert "Stackyard builds workflows. It runs them." in outputs["answer"]["text"]
    assert "Summarize the following text" in server.requests[1]["messages"][0]["content"]  # the tool's own prompt


@pytest.mark.integration
def test_the_agent_search_template_searches_the_indexed_documents_and_answers(indexed, monkeypatch):
    from tests.support.openai_server import ToolCall, tool_steps

    moonhare = next(f for f in DOCUMENT_FACTS.values() if "moonhare" in f["key"])
    script = tool_steps([ToolCall("search_documents", {"query": "How far can the striped moonhare leap?"})])
    outputs, _ = _run_starter("agent_search", script, {"question": "How far does the moonhare leap?"}, monkeypatch)
    assert moonhare["key"] in outputs["answer"]["text"]
    assert [m["role"] for m in outputs["steps"]] == ["system", "user", "assistant", "tool", "assistant"]
