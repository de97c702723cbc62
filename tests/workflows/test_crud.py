"""The store, against SQLite and a real PostgreSQL database (see the ``database`` fixture)."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from stackyard.errors import Conflict, NotFound
from store.db import session_scope
from workflows import crud
from workflows.errors import WorkflowInvalid
from workflows.models import WorkflowVersion
from workflows.spec import spec_from_dict

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
LOCAL_LLM = "haystack_integrations.components.generators.transformers.chat.chat_generator.TransformersChatGenerator"


def prompt_spec(template: str = "Q: {{ q }}"):
    return spec_from_dict({"components": {"p": {"type": PROMPT, "init_parameters": {"template": template}}},
                           "inputs": {"q": ["p.q"]}, "outputs": {"prompt": "p.prompt"}})


def test_versions_number_up_and_keep_their_own_spec(database):
    with session_scope() as session:
        workflow = crud.create_workflow(session=session, name="greeter", spec=prompt_spec("v1 {{ q }}"), note="first")
        wid = workflow.id
    with session_scope() as session:
        crud.create_version(session=session, ref="greeter", spec=prompt_spec("v2 {{ q }}"), note="second")
    with session_scope() as session:
        versions = crud.list_versions(session=session, ref=wid)
        assert [(v.number, v.note) for v in versions] == [(1, "first"), (2, "second")]
        assert crud.get_version(session=session, ref="greeter").number == 2
        old = crud.version_spec(crud.get_version(session=session, ref="greeter", number=1))
        assert old.components["p"].init_parameters["template"] == "v1 {{ q }}"


def test_invalid_version_is_not_stored(database):
    with session_scope() as session:
        crud.create_workflow(session=session, name="w", spec=prompt_spec())
    broken = prompt_spec()
    broken.outputs["x"] = "p.nothing"
    with pytest.raises(WorkflowInvalid), session_scope() as session:
        crud.create_version(session=session, ref="w", spec=broken)
    with session_scope() as session:
        assert [v.number for v in crud.list_versions(session=session, ref="w")] == [1]


def test_names_are_unique_and_rename_checks_them(database):
    with session_scope() as session:
        crud.create_workflow(session=session, name="a")
        crud.create_workflow(session=session, name="b")
    with pytest.raises(Conflict, match="already exists"), session_scope() as session:
        crud.create_workflow(session=session, name="a")
    with pytest.raises(Conflict), session_scope() as session:
        crud.rename_workflow(session=session, ref="b", name="a")
    with session_scope() as session:
        crud.rename_workflow(session=session, ref="b", name="c", description="renamed")
    with session_scope() as session:
        assert [w.name for w in crud.list_workflows(session=session)] == ["a", "c"]


def test_the_database_enforces_one_number_per_workflow(database):
    with session_scope() as session:
        workflow = crud.create_workflow(session=session, name="w", spec=prompt_spec())
    with pytest.raises(IntegrityError), session_scope() as session:
        session.add(WorkflowVersion(workflow_id=workflow.id, number=1, spec={}))


def test_delete_cascades_to_versions(database):
    with session_scope() as session:
        crud.create_workflow(session=session, name="gone", spec=prompt_spec())
    with session_scope() as session:
        crud.delete_workflow(session=session, ref="gone")
    with session_scope() as session:
        assert session.exec(select(WorkflowVersion)).all() == []
        with pytest.raises(NotFound, match="No workflow 'gone'"):
            crud.get_workflow(session=session, ref="gone")


def test_import_of_an_existing_name_adds_a_version_and_needs_gpu_is_recorded(database):
    gpu = spec_from_dict({"components": {"p": {"type": PROMPT, "init_parameters": {"template": "{{ q }}"}},
                                         "llm": {"type": LOCAL_LLM, "init_parameters": {"model": "org/model"}}},
                          "connections": [{"sender": "p.prompt", "receiver": "llm.messages"}],
                          "inputs": {"q": ["p.q"]}, "outputs": {"answer": "llm.replies"}})
    with session_scope() as session:
        first = crud.import_definition(session=session, spec=prompt_spec(), name="imp")
        second = crud.import_definition(session=session, spec=gpu, name="imp")
        assert (first.number, first.needs_gpu) == (1, False)
        assert (second.number, second.needs_gpu) == (2, True)
        assert second.workflow_id == first.workflow_id


def test_migrating_a_migrated_database_again_keeps_its_rows_and_its_head(database):
    from alembic.script import ScriptDirectory
    from sqlalchemy import create_engine, text

    from store.db import MIGRATIONS, migrate

    with session_scope() as session:
        crud.create_workflow(session=session, name="kept", spec=prompt_spec())
    migrate(database)   # the fixture migrated it once already
    migrate(database)
    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    engine = create_engine(database)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
    engine.dispose()
    with session_scope() as session:
        assert [v.number for v in crud.list_versions(session=session, ref="kept")] == [1]
