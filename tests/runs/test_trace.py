"""The run trace buffer: what a failed write leaves due for the next flush, and what a late flush may not
overwrite (SQLite and PostgreSQL)."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from runs import lifecycle as runs
from runs import trace
from runs.models import NodeState
from runs.trace import Recording
from store.db import autocommit_scope
from tests.support.workflows import new_run


def rename_node_table(old: str, new: str) -> None:
    with autocommit_scope() as session:
        session.execute(text(f"ALTER TABLE {old} RENAME TO {new}"))


def test_rows_a_failed_flush_could_not_write_are_written_by_the_next(workflow):
    run_id = new_run(workflow)
    rec = Recording(run_id=run_id, attempt=1)
    first = rec.started("p", "PromptBuilder")
    with autocommit_scope() as session:
        rec.flush(session)                                   # "p" is written while it runs
    rec.ended(first, state=NodeState.DONE, output_preview={"prompt": "Hi Ada"})
    second = rec.started("q", "PromptBuilder")
    rename_node_table("node_run", "node_run_away")           # the database refuses the next writes
    try:
        with pytest.raises(DBAPIError), autocommit_scope() as session:
            rec.flush(session)
    finally:
        rename_node_table("node_run_away", "node_run")
    rec.ended(second, state=NodeState.FAILED, error="boom")
    with autocommit_scope() as session:
        rec.flush(session)
        rows = runs.node_runs(session=session, run_id=run_id)
    assert [(row.node, row.state, row.attempt) for row in rows] == [("p", NodeState.DONE, 1), ("q", NodeState.FAILED, 1)]
    assert rows[0].output_preview == {"prompt": "Hi Ada"} and rows[1].error == "boom"


def test_a_late_flush_of_an_abandoned_attempt_does_not_undo_interrupted(workflow):
    run_id = new_run(workflow)
    zombie = Recording(run_id=run_id, attempt=1)
    node = zombie.started("p", "PromptBuilder")
    with autocommit_scope() as session:
        zombie.flush(session)                                # "p" running on a worker that then stalls
        assert trace.interrupt(session, run_id, through_attempt=1, reason="interrupted: lease expired") == 1
    zombie.ended(node, state=NodeState.DONE, output_preview={"prompt": "late"})
    with autocommit_scope() as session:
        zombie.flush(session)                                # the stalled worker wakes up and writes its end
        [row] = runs.node_runs(session=session, run_id=run_id)
    assert (row.state, row.error, row.output_preview) == (NodeState.INTERRUPTED, "interrupted: lease expired", None)


@pytest.mark.parametrize(("stored", "notice"), [([], True), (["Otters hold hands while they sleep."], False)],
                         ids=["empty-collection", "documents-found"])
def test_a_retriever_that_finds_nothing_says_so_in_the_trace(workflow, stored: list[str], notice: bool):
    from haystack import Document, Pipeline
    from haystack.components.builders import PromptBuilder
    from haystack.components.retrievers.in_memory import InMemoryBM25Retriever
    from haystack.document_stores.in_memory import InMemoryDocumentStore

    store = InMemoryDocumentStore()
    store.write_documents([Document(content=text) for text in stored])
    pipeline = Pipeline()
    pipeline.add_component("retriever", InMemoryBM25Retriever(document_store=store))
    pipeline.add_component("prompt", PromptBuilder(template="{% for d in documents %}{{ d.content }}{% endfor %}",
                                                   required_variables="*"))
    pipeline.connect("retriever.documents", "prompt.documents")
    rec = Recording(run_id=new_run(workflow), attempt=1)
    with trace.recording(rec):
        pipeline.run({"retriever": {"query": "otters"}})
    with autocommit_scope() as session:
        rec.flush(session)
        rows = {row.node: row for row in runs.node_runs(session=session, run_id=rec.run_id)}
    assert rows["retriever"].state == rows["prompt"].state == NodeState.DONE
    if notice:
        assert rows["retriever"].notice.startswith("'retriever' retrieved no documents")
    else:
        assert rows["retriever"].notice is None
    assert rows["prompt"].notice is None


def test_a_huge_tool_result_is_kept_whole_up_to_a_million_characters_saying_where_it_was_cut(monkeypatch):
    from stackyard.settings import reset_settings_cache

    monkeypatch.setenv("STACKYARD_SECRET_ENV", "TOOL_KEY")
    monkeypatch.setenv("TOOL_KEY", "sk-live-0123456789")
    reset_settings_cache()
    result = {"prompt": "x" * (5 * 1024 * 1024)}
    kept = trace.full_output(result)
    whole = len(json.dumps(result))
    assert kept["output_chars"] == whole and len(kept["output_full"]) < trace.FULL_OUTPUT_CHARS + 200
    cut = json.loads(kept["output_full"])                      # still JSON, saying where it was cut
    assert cut["chars"] == whole and cut["cut"] == f"{whole:,} characters in all; the first 1,000,000 are kept"
    assert cut["text"] == json.dumps(result)[:trace.FULL_OUTPUT_CHARS]
    assert trace.full_output({"echo": "key sk-live-0123456789"})["output_full"] == '{"echo": "key ***"}'  # redacted
    assert trace.full_output(None) == {}
    assert json.loads(json.dumps(trace.preview({"x": float("nan"), "many": {str(i): i for i in range(80)}}),
                                 allow_nan=False))["many"]["…"] == "30 more"   # JSON a PostgreSQL column takes
    reset_settings_cache()
