"""The shared compare-and-set: hot transitions reuse one prepared UPDATE and bind their values per call."""

from __future__ import annotations

import pytest
from sqlmodel import col

from runs import lifecycle as runs
from runs.models import Run, RunState
from store import transitions
from store.db import autocommit_scope
from tests.support.workflows import new_run, state_of


def test_prepared_transitions_bind_each_calls_values(workflow):
    first, second = new_run(workflow), new_run(workflow)
    with autocommit_scope() as session:
        assert runs.claim(session, first, "w1").worker == "w1"
        before = transitions._prepared.cache_info()
        claimed = runs.claim(session, second, "w2")
        after = transitions._prepared.cache_info()
        assert (after.hits, after.currsize) == (before.hits + 1, before.currsize)  # same statement, reused
        assert (claimed.worker, claimed.attempts, claimed.state) == ("w2", 1, RunState.RUNNING)
        assert not runs.finish(session, first, "w2", RunState.SUCCEEDED, outputs={"greeting": "no"})  # not its owner
        assert runs.finish(session, first, "w1", RunState.SUCCEEDED, outputs={"greeting": "Hi Ada"})
        assert runs.retry_later(session, second, "w2", error="transient")
        assert not runs.retry_later(session, first, "w1", error="too late")  # finished runs stay finished
    done, retrying = state_of(first), state_of(second)
    assert (done.state, done.outputs, done.worker, done.finished_at is not None) == (
        RunState.SUCCEEDED, {"greeting": "Hi Ada"}, "w1", True)
    assert (retrying.state, retrying.error, retrying.attempts) == (RunState.RETRYING, "transient", 1)
    with autocommit_scope() as session:  # claimed again: the computed attempts + 1 is evaluated per call
        assert runs.claim(session, second, "w3").attempts == 2


def test_a_condition_over_many_rows_moves_only_those_its_state_allows_and_is_not_cached(workflow):
    ids = [new_run(workflow) for _ in range(3)]
    with autocommit_scope() as session:
        runs.claim(session, ids[0], "w")
        before = transitions._prepared.cache_info().currsize
        moved = transitions.compare_and_set_rows(session, Run, RunState.CANCELLED, {RunState.QUEUED},
                                                 col(Run.id).in_(ids), returning=(Run.__table__.c.state,),
                                                 commit=True, error="stopped")
        assert transitions._prepared.cache_info().currsize == before     # made for this call only
    assert sorted(row["id"] for row in moved) == sorted(ids[1:])
    assert {row["state"] for row in moved} == {RunState.CANCELLED}
    assert [state_of(run_id).state for run_id in ids] == [RunState.RUNNING, RunState.CANCELLED, RunState.CANCELLED]
    assert state_of(ids[1]).error == "stopped"


def test_a_condition_is_required_to_move_many_rows_and_a_prepared_one_comes_alone(workflow):
    run_id = new_run(workflow)
    with autocommit_scope() as session, pytest.raises(ValueError, match="needs a condition"):
        transitions.compare_and_set_rows(session, Run, RunState.CANCELLED, {RunState.QUEUED})
    prepared = transitions.Sql(col(Run.id) == run_id)
    with autocommit_scope() as session, pytest.raises(ValueError, match="one Sql condition alone"):
        transitions.compare_and_set_rows(session, Run, RunState.CANCELLED, {RunState.QUEUED}, prepared,
                                         col(Run.error).is_(None))
    assert state_of(run_id).state == RunState.QUEUED


def test_a_prepared_condition_over_rows_is_built_once_and_binds_each_calls_values(workflow):
    from sqlalchemy import bindparam

    stopped = transitions.Sql(Run.__table__.c.id == bindparam("which"))
    first, second = new_run(workflow), new_run(workflow)
    with autocommit_scope() as session:
        moved = transitions.compare_and_set_rows(session, Run, RunState.CANCELLED, {RunState.QUEUED}, stopped,
                                                 params={"which": first}, error="one")
        before = transitions._prepared.cache_info()
        again = transitions.compare_and_set_rows(session, Run, RunState.CANCELLED, {RunState.QUEUED}, stopped,
                                                 params={"which": second}, error="two")
        after = transitions._prepared.cache_info()
        assert not transitions.compare_and_set_rows(session, Run, RunState.CANCELLED, {RunState.QUEUED}, stopped,
                                                    params={"which": first}, error="three")   # already moved
    assert (after.hits, after.currsize) == (before.hits + 1, before.currsize)     # the same statement, reused
    assert [row["id"] for row in moved] == [first] and [row["id"] for row in again] == [second]
    assert [(state_of(i).state, state_of(i).error) for i in (first, second)] == [
        (RunState.CANCELLED, "one"), (RunState.CANCELLED, "two")]
