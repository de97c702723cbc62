"""Warnings for what a valid workflow needs that this machine lacks: a model it cannot load now."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackyard.settings import reset_settings_cache
from tests.support.specs import chat, knowledge_ingest, knowledge_rag
from tests.support.stack import free_port
from workflows.availability import model_warnings, warnings
from workflows.spec import spec_from_dict
from workflows.validation import validate

EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
            "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")


@pytest.fixture
def machine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    import nodes.models

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.delenv("STACKYARD_MODEL_PATHS", raising=False)
    monkeypatch.setattr(nodes.models, "_hub_seen", {})
    reset_settings_cache()
    yield monkeypatch
    reset_settings_cache()


def test_a_model_this_machine_lacks_is_a_warning_pinned_to_its_node(machine):
    spec = spec_from_dict(chat("acme/not-here"))
    assert validate(spec) == []  # it still validates and saves
    [warning] = model_warnings(spec)
    assert (warning.code, warning.node, warning.port) == ("model_unavailable", "llm", "model")
    assert warning.field == "components.llm.init_parameters.model"
    assert "no model 'acme/not-here' on this machine and downloads are turned off (HF_HUB_OFFLINE)" in warning.message
    assert "/models" in warning.message and "STACKYARD_MODEL_PATHS" in warning.message


def test_models_this_machine_has_are_not_warned_about(machine, tiny_model: Path, tmp_path: Path):
    embed = spec_from_dict({"components": {"embed": {"type": EMBEDDER, "init_parameters": {
        "model": "sentence-transformers/all-MiniLM-L6-v2"}}}, "inputs": {"text": ["embed.text"]}})
    assert model_warnings(embed) == []                                   # bundled
    assert model_warnings(spec_from_dict(chat(str(tiny_model)))) == []   # a folder
    snapshot = tmp_path / "cache" / "models--acme--cached" / "snapshots" / "abc"
    snapshot.parent.mkdir(parents=True)
    snapshot.symlink_to(tiny_model, target_is_directory=True)
    assert model_warnings(spec_from_dict(chat("acme/cached"))) == []     # in the hub's cache
    machine.setenv("STACKYARD_MODEL_PATHS", '{"acme/mapped": "%s", "acme/gone": "%s"}' % (tiny_model, tmp_path / "gone"))
    reset_settings_cache()
    assert model_warnings(spec_from_dict(chat("acme/mapped"))) == []    # mapped to a folder
    [gone] = model_warnings(spec_from_dict(chat("acme/gone")))
    assert "'acme/gone' is mapped to" in gone.message and "which is not a folder here" in gone.message


def test_with_downloads_on_an_unreachable_hub_is_named(machine):
    import nodes.models

    machine.delenv("HF_HUB_OFFLINE")
    machine.delenv("TRANSFORMERS_OFFLINE", raising=False)
    machine.setattr(nodes.models, "HUB", ("127.0.0.1", free_port()))  # nothing listens there
    [warning] = model_warnings(spec_from_dict(chat("acme/not-here")))
    assert "no model 'acme/not-here' on this machine and the model hub cannot be reached" in warning.message


def test_a_model_folder_is_looked_for_where_loading_looks_and_only_inside_the_model_roots(machine, tmp_path: Path):
    files = tmp_path / "files"
    (files / "models" / "mine").mkdir(parents=True)
    machine.setenv("STACKYARD_FILES_ROOT", str(files))
    reset_settings_cache()
    assert model_warnings(spec_from_dict(chat("./models/mine"))) == []      # relative to the files root, not the cwd
    [absent] = model_warnings(spec_from_dict(chat("./models/absent")))
    assert "there is no folder ./models/absent" in absent.message
    outside = spec_from_dict(chat("/etc"))
    assert model_warnings(outside) == []                 # whether /etc exists is not said …
    assert [i.code for i in validate(outside)] == ["dangerous_param"]   # … validation refuses the path itself


def test_a_retriever_over_a_missing_base_is_an_issue_and_over_an_unready_one_a_warning(database):
    from knowledge import bases, generations, lifecycle
    from knowledge.documents import text_source
    from stackyard.settings import get_settings
    from store.db import session_scope

    spec = spec_from_dict(knowledge_rag("handbook"))
    [issue] = validate(spec)
    assert issue.field == "components.retriever.init_parameters.document_store.init_parameters.name"
    assert "No knowledge base 'handbook'" in issue.message
    with session_scope() as session:
        base = bases.create(session, get_settings(), name="handbook")
    assert validate(spec) == []
    [empty] = warnings(spec)
    assert (empty.code, empty.node) == ("knowledge_not_ready", "retriever") and "has no documents yet" in empty.message
    with session_scope() as session:
        document = bases.add_documents(session, base, [text_source("a", "some text")]).added[0]
    assert "still indexing" in warnings(spec)[0].message
    with session_scope() as session:
        claimed = lifecycle.claim(session, document.id)
        lifecycle.done(session, lifecycle.embedding(session, lifecycle.splitting(session, claimed), 0.5), 1, 1)
    assert warnings(spec) == []
    with session_scope() as session:                    # a re-index: the current generation still answers
        generations.start(session, bases.get(session, "handbook"), get_settings())
    assert warnings(spec) == []


def test_a_query_embedded_with_another_model_than_the_bases_is_a_warning_on_the_embedder(database):
    from knowledge import bases
    from stackyard.settings import get_settings
    from store.db import session_scope

    with session_scope() as session:
        bases.create(session, get_settings(), name="handbook")
    other = knowledge_rag("handbook")
    other["components"]["embed"]["init_parameters"]["model"] = "sentence-transformers/all-mpnet-base-v2"
    mismatched = [w for w in warnings(spec_from_dict(other)) if w.code == "knowledge_model_mismatch"]
    assert [(w.node, w.field) for w in mismatched] == [("embed", "components.embed.init_parameters.model")]
    assert "Set its model to 'sentence-transformers/all-MiniLM-L6-v2'" in mismatched[0].message
    assert [w.code for w in warnings(spec_from_dict(knowledge_rag("handbook")))] == ["knowledge_not_ready"]


def test_a_writer_into_a_base_is_told_its_documents_are_not_the_bases(database):
    from knowledge import bases
    from stackyard.settings import get_settings
    from store.db import session_scope

    with session_scope() as session:
        bases.create(session, get_settings(), name="handbook")
    spec = spec_from_dict(knowledge_ingest("handbook"))
    [warning] = warnings(spec)
    assert (warning.code, warning.node) == ("knowledge_written_by_workflow", "writer")
    assert "stackyard kb add handbook" in warning.message
