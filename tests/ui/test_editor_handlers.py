"""The editor's server functions, called directly (no browser): the same calls the canvas JS makes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from ui import handlers
from workflows.templates import template_path

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
LLM = "haystack_integrations.components.generators.transformers.chat.chat_generator.TransformersChatGenerator"
EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
            "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")


@pytest.fixture
def db(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from stackyard.settings import reset_settings_cache
    from store.db import _engine_for, migrate

    url = f"sqlite:///{data_dir / 'stackyard.db'}"
    monkeypatch.setenv("STACKYARD_DATABASE_URL", url)
    reset_settings_cache()
    migrate(url)
    yield url
    _engine_for.cache_clear()


def greeter(template: str = "Hello {{ name }}") -> dict:
    return {"components": {"prompt": {"type": PROMPT, "init_parameters": {"template": template}},
                           "llm": {"type": LLM, "init_parameters": {"model": "Qwen/Qwen2.5-0.5B-Instruct"}}},
            "connections": [{"sender": "prompt.prompt", "receiver": "llm.messages"}],
            "inputs": {"name": ["prompt.name"]}, "outputs": {"reply": "llm.replies"},
            "metadata": {"stackyard": {"positions": {"prompt": [0, 0], "llm": [400, 0]}, "notes": []}}}


def test_bootstrap_gives_the_palette_with_ports_and_the_templates(db):
    data = handlers.bootstrap({})
    by_type = {entry["type"]: entry for entry in data["catalog"]}
    prompt = by_type[PROMPT]
    assert prompt["category"] == "prompts"
    assert [p["name"] for p in prompt["ports"]["inputs"]][0] == "question"
    assert prompt["ports"]["outputs"] == [{"name": "prompt", "type": "str", "words": "text"}]
    assert {p["name"]: p["kind"] for p in prompt["params"]}["template"] == "template"
    assert "prompts" in data["categories"]
    assert {t["name"] for t in data["templates"]} >= {"ingest", "rag_chat", "summarize", "classify"}
    assert data["workflows"] == [] and data["login"] is False


def test_blank_workflow_saves_immutable_versions_with_history(db):
    opened = handlers.create_workflow({"name": "greeter"})
    assert opened["version"] is None and opened["spec"]["components"] == {}
    ref = opened["workflow"]["id"]
    first = handlers.save_version({"ref": ref, "spec": greeter(), "note": "first"})
    assert first["version"]["number"] == 1
    assert [(w["node"], w["code"]) for w in first["warnings"]] == [("llm", "model_unavailable")]  # saved, and told
    changed = greeter("Hi {{ name }}!")
    changed["metadata"]["stackyard"]["positions"]["llm"] = [500, 40]
    changed["components"]["extra"] = {"type": PROMPT, "init_parameters": {"template": "static"}}
    second = handlers.save_version({"ref": "greeter", "spec": changed, "note": "friendlier"})
    assert second["version"]["number"] == 2
    assert [v["number"] for v in second["versions"]] == [2, 1]

    versions = handlers.history({"ref": ref})["versions"]
    assert [(v["number"], v["note"]) for v in versions] == [(2, "friendlier"), (1, "first")]
    diff = versions[0]["changes"]
    assert diff["nodes"]["added"] == ["extra"]
    assert diff["params"] == [{"node": "prompt", "param": "template", "before": "Hello {{ name }}", "after": "Hi {{ name }}!"}]
    assert diff["moved"] == ["llm"]
    assert diff["summary"] == "1 node added, 1 param changed, layout changed"
    assert versions[1]["changes"]["summary"] == "first version"

    reopened = handlers.open_workflow({"ref": "greeter"})
    assert reopened["version"]["number"] == 2
    assert reopened["spec"]["metadata"]["stackyard"]["positions"]["llm"] == [500, 40]
    assert {p["name"] for p in reopened["ports"]["prompt"]["inputs"]} >= {"name"}
    assert handlers.open_workflow({"ref": "greeter", "version": 1})["spec"]["components"]["prompt"]["init_parameters"] == {
        "template": "Hello {{ name }}"}


def test_an_invalid_version_is_refused_with_pinned_issues_and_nothing_is_stored(db):
    handlers.create_workflow({"name": "broken"})
    spec = greeter()
    spec["inputs"] = {}
    result = handlers.save_version({"ref": "broken", "spec": spec, "note": "no inputs"})
    assert result["error"]["type"] == "WorkflowInvalid"
    assert [(i["node"], i["port"], i["code"]) for i in result["error"]["issues"]] == [("prompt", "name", "missing_input")]
    assert handlers.history({"ref": "broken"})["versions"] == []


def test_templates_restore_rename_delete(db):
    opened = handlers.create_workflow({"name": "sum", "template": "summarize"})
    assert opened["version"]["number"] == 1 and opened["version"]["note"] == "from template summarize"
    assert set(opened["ports"]) == {"prompt", "llm"}
    spec = opened["spec"]
    spec["components"]["llm"]["init_parameters"]["generation_kwargs"] = {"max_new_tokens": 8}
    handlers.save_version({"ref": "sum", "spec": spec})
    restored = handlers.restore_version({"ref": "sum", "number": 1})
    assert restored["version"] == {**restored["version"], "number": 3, "note": "restored version 1"}
    assert restored["spec"]["components"] == yaml.safe_load(template_path("summarize").read_text())["components"]

    handlers.create_workflow({"name": "other"})
    clash = handlers.rename_workflow({"ref": "sum", "name": "other"})
    assert clash["error"]["type"] == "Conflict"
    assert handlers.rename_workflow({"ref": "sum", "name": "summaries"})["workflow"]["name"] == "summaries"
    assert handlers.delete_workflow({"ref": "summaries"}) == {"deleted": "summaries"}
    assert handlers.open_workflow({"ref": "summaries"})["error"]["type"] == "NotFound"
    assert [w["name"] for w in handlers.list_workflows({})["workflows"]] == ["other"]
    assert handlers.create_workflow({"name": "x", "template": "nope"})["error"]["type"] == "KeyError"


def test_import_yaml_creates_a_workflow_or_a_new_version_and_refuses_unsafe_files(db):
    text = template_path("summarize").read_text()
    first = handlers.import_yaml({"name": "imported", "text": text})
    assert first["version"]["number"] == 1 and first["version"]["note"] == "imported"
    again = handlers.import_yaml({"name": "imported", "text": text, "note": "again"})
    assert again["version"]["number"] == 2
    hostile = "components:\n  x:\n    type: os.system\n    init_parameters: {}\nconnections: []\n"
    refused = handlers.import_yaml({"name": "hostile", "text": hostile})
    assert refused["error"]["issues"][0]["node"] == "x"
    assert all(w["name"] != "hostile" for w in handlers.list_workflows({})["workflows"])


def test_validate_pins_problems_to_nodes_and_ports(db):
    spec = greeter()
    spec["connections"].append({"sender": "prompt.prompt", "receiver": "llm.nope"})
    spec["inputs"] = {}
    issues = handlers.validate({"spec": spec})["issues"]
    assert {(i["node"], i["port"], i["code"]) for i in issues} == {
        ("prompt", "name", "missing_input"), ("llm", "nope", "dangling_edge")}
    checked = handlers.validate({"spec": greeter()})
    assert checked["valid"] is True and checked["issues"] == []
    # Valid, but this machine has no such model and no hub: flagged on the node before anything runs.
    assert [(w["node"], w["port"], w["code"]) for w in checked["warnings"]] == [("llm", "model", "model_unavailable")]
    assert handlers.validate({"spec": {"components": [], "bogus": 1}})["valid"] is False


def test_ports_follow_the_template_variables():
    ports = handlers.ports({"type": PROMPT, "params": {"template": "{{ topic }} in {{ style }}"}})
    assert {"topic", "style"} <= {p["name"] for p in ports["inputs"]}
    broken = handlers.ports({"type": PROMPT, "params": {"template": "{{ x.__class__ }}"}})
    assert broken["inputs"] == [] and "private attribute" in broken["problem"]
    assert handlers.ports({"params": {}})["error"]["message"] == "'type' is required."


def test_connect_check_uses_haystacks_rules():
    spec = greeter()
    spec["components"]["embedder"] = {"type": EMBEDDER, "init_parameters": {}}
    spec["connections"] = []
    ok = handlers.connect_check({"spec": spec, "sender": "prompt.prompt", "receiver": "llm.messages"})
    assert ok == {"ok": True, "message": "", "issue": None, "warning": None}

    refused = handlers.connect_check({"spec": spec, "sender": "embedder.embedding", "receiver": "llm.messages"})
    assert refused["ok"] is False
    assert "list[float]" in refused["message"] and "'llm.messages'" in refused["message"]
    assert refused["issue"]["code"] == "type_mismatch" and refused["issue"]["port"] == "messages"

    spec["connections"] = [{"sender": "prompt.prompt", "receiver": "llm.messages"}]
    spec["components"]["other"] = {"type": PROMPT, "init_parameters": {"template": "x"}}
    fed = handlers.connect_check({"spec": spec, "sender": "other.prompt", "receiver": "llm.messages"})
    assert fed["ok"] is False and "already receives from 'prompt'" in fed["message"]
    twice = handlers.connect_check({"spec": spec, "sender": "prompt.prompt", "receiver": "llm.messages"})
    assert twice["ok"] is False and "already connected" in twice["message"]
    unknown = handlers.connect_check({"spec": spec, "sender": "ghost.prompt", "receiver": "llm.messages"})
    assert unknown == {**unknown, "ok": False, "message": "There is no node named 'ghost' in this workflow."}
    missing_port = handlers.connect_check({"spec": spec, "sender": "other.nope", "receiver": "embedder.text"})
    assert missing_port["ok"] is False and "has no output 'nope'" in missing_port["message"]

    spec["components"]["bad"] = {"type": PROMPT, "init_parameters": {"template": "{{ x.__class__ }}"}}
    unchecked = handlers.connect_check({"spec": spec, "sender": "bad.prompt", "receiver": "embedder.text"})
    assert unchecked["ok"] is True and unchecked["warning"].startswith("Types not checked")


def test_every_server_function_answers_a_missing_argument_with_an_error_payload(db):
    for fn in handlers.SERVER_FUNCTIONS:
        result = fn({})
        assert isinstance(result, dict)
        if fn not in (handlers.bootstrap, handlers.list_workflows):
            assert "error" in result or "problem" in result or result.get("valid") is False, fn.__name__
    assert handlers.bootstrap(None)["catalog"]


def test_a_draft_keeps_unfinished_work_with_its_problems_until_a_version_is_saved(db):
    ref = handlers.create_workflow({"name": "drafty"})["workflow"]["id"]
    handlers.save_version({"ref": ref, "spec": greeter(), "note": "first"})
    unfinished = greeter("Hello {{ name }}, you asked about {{ topic }}")  # 'topic' is fed by nothing yet
    unfinished["inputs"] = {"name": ["prompt.name"]}
    assert handlers.save_version({"ref": ref, "spec": unfinished})["error"]["type"] == "WorkflowInvalid"
    saved = handlers.save_draft({"ref": ref, "spec": unfinished, "based_on": 1})
    assert "saved_at" in saved                                   # kept, problems and all

    opened = handlers.open_workflow({"ref": ref})                # a reload, or another process after a restart
    assert opened["version"]["number"] == 1 and opened["spec"] == handlers.open_workflow({"ref": ref, "version": 1})["spec"]
    draft = opened["draft"]
    assert draft["spec"]["components"]["prompt"]["init_parameters"]["template"].endswith("{{ topic }}")
    assert draft["based_on"] == 1 and {p["name"] for p in draft["ports"]["prompt"]["inputs"]} >= {"name", "topic"}
    assert [(i["node"], i["port"], i["code"]) for i in draft["issues"]] == [("prompt", "topic", "missing_input")]
    assert "draft" not in handlers.open_workflow({"ref": ref, "version": 1})  # an explicit version opens as saved

    # A draft is never what runs: the workflow's newest version is still version 1.
    from store.db import session_scope
    from workflows import crud

    with session_scope() as session:
        assert crud.get_version(session=session, ref=ref).number == 1

    fixed = dict(unfinished, inputs={"name": ["prompt.name"], "topic": ["prompt.topic"]})
    handlers.save_draft({"ref": ref, "spec": fixed, "based_on": 1})
    assert handlers.save_version({"ref": ref, "spec": fixed, "note": "done"})["version"]["number"] == 2
    assert "draft" not in handlers.open_workflow({"ref": ref})   # saving the version cleared it

    handlers.save_draft({"ref": ref, "spec": unfinished})
    discarded = handlers.discard_draft({"ref": ref})
    assert discarded["version"]["number"] == 2 and "draft" not in discarded
    malformed = handlers.save_draft({"ref": ref, "spec": {"components": "not a mapping"}})
    assert malformed["error"]["type"] == "WorkflowInvalid" and "draft" not in handlers.open_workflow({"ref": ref})


def test_a_draft_or_version_past_the_workflow_size_limit_is_refused_and_nothing_is_stored(db):
    from workflows.spec import MAX_DOCUMENT_BYTES

    ref = handlers.create_workflow({"name": "huge"})["workflow"]["id"]
    huge = greeter()
    huge["metadata"]["stackyard"]["notes"] = [{"id": "n1", "text": "x" * MAX_DOCUMENT_BYTES, "x": 0, "y": 0}]
    for save in (handlers.save_draft, handlers.save_version):
        refused = save({"ref": ref, "spec": huge})
        [issue] = refused["error"]["issues"]
        assert issue["field"] == "spec" and f"the limit is {MAX_DOCUMENT_BYTES:,}" in issue["message"]
    opened = handlers.open_workflow({"ref": ref})
    assert "draft" not in opened and opened["version"] is None


def test_errors_and_issues_that_quote_a_secret_value_are_masked(db, monkeypatch: pytest.MonkeyPatch):
    # As the HTTP API (tests/api/test_error_redaction.py): a parameter named like the key is quoted back.
    from stackyard.settings import reset_settings_cache

    key = "sk-test-0d6f3a9b5e21"
    monkeypatch.delenv("STACKYARD_SECRET_ENV", raising=False)  # the default list: OPENAI_API_KEY among it
    monkeypatch.setenv("OPENAI_API_KEY", key)
    reset_settings_cache()
    leaky = {"components": {"n": {"type": "haystack.components.generators.chat.openai.OpenAIChatGenerator",
                                  "init_parameters": {key: 1}}}, "inputs": {"messages": ["n.messages"]}}
    ref = handlers.create_workflow({"name": "leaky"})["workflow"]["id"]

    checked = handlers.validate({"spec": leaky})
    refused = handlers.save_version({"ref": ref, "spec": leaky})["error"]
    handlers.save_draft({"ref": ref, "spec": leaky})
    draft = handlers.open_workflow({"ref": ref})["draft"]

    masked = "unknown parameter '***'"
    assert masked in checked["issues"][0]["message"] and masked in draft["issues"][0]["message"]
    assert masked in refused["message"] and masked in refused["issues"][0]["message"]
    assert key not in repr((checked, refused, draft["issues"]))


@pytest.mark.parametrize("number", [2**31, -1, "abc", "1.5", None, [1]])
def test_a_version_number_out_of_range_is_an_error_payload_naming_the_field(db, number):
    ref = handlers.create_workflow({"name": "numbered"})["workflow"]["id"]
    handlers.save_version({"ref": ref, "spec": greeter(), "note": "first"})
    restored = handlers.restore_version({"ref": ref, "number": number})
    opened = handlers.open_workflow({"ref": ref, "version": number})
    if number is None:  # restoring needs a number; opening without one opens the newest
        assert restored["error"]["issues"][0]["field"] == "number" and opened["version"]["number"] == 1
        return
    assert restored["error"]["field"] == "number" and "from 1 to 2147483647" in restored["error"]["message"]
    assert opened["error"]["field"] == "version" and "from 1 to 2147483647" in opened["error"]["message"]


def test_a_workflow_from_a_template_gets_this_machines_generator(db, monkeypatch: pytest.MonkeyPatch):
    import json

    from stackyard.settings import reset_settings_cache
    from tests.support.openai_server import ChatServer

    monkeypatch.setenv("STACKYARD_OLLAMA_URL", "")
    with ChatServer("hi") as server:
        monkeypatch.setenv("STACKYARD_LLM_SERVERS", json.dumps({"team": server.base_url}))
        reset_settings_cache()
        opened = handlers.create_workflow({"name": "rag", "template": "rag_chat"})
    reset_settings_cache()
    llm = opened["spec"]["components"]["llm"]
    assert llm["init_parameters"] == {"model": "local-model", "api_base_url": server.base_url}
    assert opened["version"]["note"] == "from template rag_chat, generator from server 'team'"
    assert handlers.validate({"spec": opened["spec"]})["valid"] is True


def test_any_two_versions_compare_either_way(db):
    opened = handlers.create_workflow({"name": "cmp", "template": "summarize"})
    spec = opened["spec"]
    for tokens in (8, 16):
        spec["components"]["llm"]["init_parameters"]["generation_kwargs"] = {"max_new_tokens": tokens}
        handlers.save_version({"ref": "cmp", "spec": spec})
    skipped = handlers.compare_versions({"ref": "cmp", "before": 1, "after": 3})
    assert (skipped["before"], skipped["after"]) == (1, 3)
    [change] = skipped["changes"]["params"]
    assert (change["node"], change["param"], change["after"]) == ("llm", "generation_kwargs", {"max_new_tokens": 16})
    back = handlers.compare_versions({"ref": "cmp", "before": 3, "after": 1})["changes"]["params"][0]
    assert back["after"]["max_new_tokens"] == 128                      # the template's own setting
    assert handlers.compare_versions({"ref": "cmp", "before": 1, "after": 9})["error"]["type"] == "NotFound"
    assert handlers.compare_versions({"ref": "cmp", "before": "x", "after": 1})["error"]["field"] == "before"


def test_validate_names_a_workflow_that_would_call_itself_through_an_agents_tool(db, monkeypatch):
    from stackyard.settings import reset_settings_cache
    from store.db import session_scope
    from tests.support.specs import agent_chat
    from workflows import crud
    from workflows.spec import spec_from_dict

    with session_scope() as session:
        made = crud.create_workflow(session, name="helper", spec=spec_from_dict(greeter()))
        helper = crud.as_tool(session, ref=made.id, number=1, name="helper", description="Greets.")
    monkeypatch.setenv("STACKYARD_SECRET_ENV", "TEST_LLM_KEY")
    reset_settings_cache()
    calls_helper = agent_chat("https://llm.example/v1", [helper])
    assert handlers.validate({"spec": calls_helper})["valid"] is True                    # anywhere else it is fine
    checked = handlers.validate({"spec": calls_helper, "workflow": "helper"})            # saved as 'helper' itself
    assert checked["valid"] is False and "Workflow 'helper' calls itself" in checked["issues"][0]["message"]
