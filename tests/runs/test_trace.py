"""The run trace buffer: what a failed write leaves due for the next flush, and what a late flush may not
overwrite (SQLite and PostgreSQL)."""

from __future__ import annotations

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
