"""The run state machine against SQLite and PostgreSQL: compare-and-set transitions, leases, the reaper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from workflows import crud, runs
from workflows.db import session_scope
from workflows.errors import Conflict
from workflows.execute import BadRunInputs
from workflows.models import Run, RunState, utcnow
from workflows.spec import spec_from_dict

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


@pytest.fixture
def workflow(database):
    spec = spec_from_dict({"components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hi {{ name }}"}}},
                           "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}})
    with session_scope() as session:
        crud.create_workflow(session=session, name="greet", spec=spec)
    return "greet"


def new_run(workflow: str) -> str:
    with session_scope() as session:
        return runs.create_run(session=session, workflow_ref=workflow, inputs={"name": "Ada"}).id


def state_of(run_id: str) -> Run:
    with session_scope() as session:
        return runs.get_run(session=session, run_id=run_id)


def test_bad_inputs_write_no_run(workflow):
    for inputs, field in (({"nom": "x"}, "inputs.nom"), ({}, "inputs.name")):
        with pytest.raises(BadRunInputs) as err, session_scope() as session:
            runs.create_run(session=session, workflow_ref=workflow, inputs=inputs)
        assert err.value.field == field
    with session_scope() as session:
        assert session.exec(select(Run)).all() == []


def test_one_claim_wins_and_finished_runs_are_not_run_again(workflow):
    run_id = new_run(workflow)
    with session_scope() as session:
        assert runs.claim(session, run_id, "w1").state == RunState.RUNNING
        assert runs.claim(session, run_id, "w2") is None          # live owner: a duplicate delivery
        assert not runs.finish(session, run_id, "w2", RunState.SUCCEEDED)  # not the owner
        assert runs.finish(session, run_id, "w1", RunState.SUCCEEDED, outputs={"greeting": "Hi Ada"})
        assert runs.claim(session, run_id, "w3") is None          # redelivered after it finished
    run = state_of(run_id)
    assert (run.state, run.worker, run.attempts, run.outputs) == (RunState.SUCCEEDED, "w1", 1, {"greeting": "Hi Ada"})
    assert run.finished_at is not None


def test_illegal_transitions_are_refused(workflow):
    run_id = new_run(workflow)
    with session_scope() as session:
        assert not runs.transition(session, run_id, RunState.SUCCEEDED)    # queued → succeeded skips running
        assert runs.transition(session, run_id, RunState.CANCELLED)
        for target in (RunState.RUNNING, RunState.SUCCEEDED, RunState.FAILED, RunState.RETRYING, RunState.QUEUED):
            assert not runs.transition(session, run_id, target)
    assert state_of(run_id).state == RunState.CANCELLED


def test_a_stale_lease_is_reclaimed_and_counted(workflow):
    run_id = new_run(workflow)
    with session_scope() as session:
        runs.claim(session, run_id, "dead")
        session.get(Run, run_id).heartbeat_at = utcnow() - timedelta(seconds=runs.LEASE_SECONDS + 1)
        session.commit()
        reclaimed = runs.claim(session, run_id, "alive")
        assert reclaimed.worker == "alive" and reclaimed.attempts == 2


def test_reaper_requeues_dead_workers_runs_and_fails_runs_past_the_hard_limit(workflow):
    stale, overdue, healthy = new_run(workflow), new_run(workflow), new_run(workflow)
    with session_scope() as session:
        for run_id in (stale, overdue, healthy):
            runs.claim(session, run_id, "w")
        now = utcnow()
        session.get(Run, stale).heartbeat_at = now - timedelta(seconds=runs.LEASE_SECONDS + 5)
        row = session.get(Run, overdue)
        row.started_at = now - timedelta(seconds=row.hard_time_limit + 60)
        session.commit()
        assert runs.reap(session) == ([stale], [overdue])
    assert state_of(stale).state == RunState.RETRYING
    assert state_of(overdue).state == RunState.FAILED
    assert f"hard time limit of {state_of(overdue).hard_time_limit:g} s" in state_of(overdue).error
    assert state_of(healthy).state == RunState.RUNNING


def test_runs_that_keep_killing_workers_give_up(workflow):
    run_id = new_run(workflow)
    with session_scope() as session:
        for attempt in range(runs.MAX_ATTEMPTS):
            assert runs.claim(session, run_id, f"w{attempt}") is not None
            session.get(Run, run_id).heartbeat_at = utcnow() - timedelta(seconds=runs.LEASE_SECONDS + 1)
            session.commit()
        assert runs.claim(session, run_id, "last") is None
    run = state_of(run_id)
    assert run.state == RunState.FAILED and f"gave up after {runs.MAX_ATTEMPTS} attempts" in run.error


def test_cancel(workflow):
    queued, running = new_run(workflow), new_run(workflow)
    with session_scope() as session:
        runs.claim(session, running, "w")
        assert runs.request_cancel(session=session, run_id=queued).state == RunState.CANCELLED
        flagged = runs.request_cancel(session=session, run_id=running)
        assert flagged.state == RunState.RUNNING and flagged.cancel_requested
        assert runs.heartbeat(session, running, "w") is True
        with pytest.raises(Conflict, match="already cancelled"):
            runs.request_cancel(session=session, run_id=queued)
