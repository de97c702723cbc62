"""The run state machine against SQLite and PostgreSQL: compare-and-set transitions, leases, the reaper."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlmodel import select

from runs import lifecycle as runs
from runs.attempts import lease
from runs.models import Run, RunState
from stackyard.errors import Conflict, NotFound
from store.clock import utcnow
from store.db import session_scope
from tests.support.workflows import new_run, state_of
from workflows import crud
from workflows.execute import BadRunInputs

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"


def ids(reaped: tuple[list[Run], list[Run]]) -> tuple[list[str], list[str]]:
    requeue, failed = reaped
    assert all(run.state == RunState.RETRYING for run in requeue) and all(run.state == RunState.FAILED for run in failed)
    return [run.id for run in requeue], [run.id for run in failed]


def test_a_run_of_a_version_deleted_after_it_was_read_is_not_found_and_nothing_is_stored(workflow):
    with session_scope() as session:
        version_id = crud.get_version_id(session=session, ref=workflow, number=None)
    new_run(workflow)                                       # the version is in this process's cache now
    with session_scope() as session:
        crud.delete_workflow(session=session, ref=workflow)
    with session_scope() as session, pytest.raises(NotFound, match="was deleted while the run was being started"):
        runs.create_run(session=session, workflow_ref=None, version_id=version_id, inputs={"name": "late"})
    with session_scope() as session:
        assert session.exec(select(Run)).all() == []


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
        session.get(Run, run_id).heartbeat_at = utcnow() - timedelta(seconds=lease().seconds + 1)
        session.commit()
        reclaimed = runs.claim(session, run_id, "alive")
        assert reclaimed.worker == "alive" and reclaimed.attempts == 2


def test_reaper_requeues_dead_workers_runs_and_fails_runs_past_the_hard_limit(workflow):
    stale, overdue, healthy = new_run(workflow), new_run(workflow), new_run(workflow)
    with session_scope() as session:
        for run_id in (stale, overdue, healthy):
            runs.claim(session, run_id, "w")
        now = utcnow()
        session.get(Run, stale).heartbeat_at = now - timedelta(seconds=lease().seconds + 5)
        row = session.get(Run, overdue)
        row.started_at = now - timedelta(seconds=row.hard_time_limit + 60)
        session.commit()
        assert ids(runs.reap(session)) == ([stale], [overdue])
    assert state_of(stale).state == RunState.RETRYING
    assert state_of(overdue).state == RunState.FAILED
    assert f"hard time limit of {state_of(overdue).hard_time_limit:g} s" in state_of(overdue).error
    assert state_of(healthy).state == RunState.RUNNING


def test_runs_that_keep_killing_workers_give_up(workflow):
    run_id = new_run(workflow)
    with session_scope() as session:
        for attempt in range(runs.MAX_ATTEMPTS):
            assert runs.claim(session, run_id, f"w{attempt}") is not None
            session.get(Run, run_id).heartbeat_at = utcnow() - timedelta(seconds=lease().seconds + 1)
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


def age(run_id: str, seconds: float, **fields) -> None:
    """Move a run's creation (and so its first message) ``seconds`` into the past; set other fields too."""
    with session_scope() as session:
        row = session.get(Run, run_id)
        row.created_at = utcnow() - timedelta(seconds=seconds)
        for name, value in fields.items():
            setattr(row, name, value)
        session.commit()


def seen(**counts: int) -> runs.QueueDepths:
    """What a reaper would have read from the broker just now: messages held per queue."""
    return runs.QueueDepths(counts, utcnow())


def test_runs_whose_message_is_gone_are_sent_again_once(workflow):
    lost, also_lost, fresh, running, backing_off = (new_run(workflow) for _ in range(5))
    for run_id in (lost, also_lost, running, backing_off):
        age(run_id, runs.LOST_AFTER_SECONDS + 1)
    with session_scope() as session:
        runs.claim(session, running, "w")
        runs.retry_later(session, running, "w", error="transient", delay=60)   # waits out its backoff
        runs.claim(session, backing_off, "w")
        runs.finish(session, backing_off, "w", RunState.SUCCEEDED)
        runs.claim(session, new_run(workflow), "w")                              # running: not waiting
        # The queue holds every waiting run's message, or more: nothing is lost.
        assert runs.resend_lost(session, depths=seen(cpu=5)) == []
        # The queue is empty: runs waiting past the grace are lost; the fresh one may still be on its way.
        empty = seen(cpu=0)
        assert [run.id for run in runs.resend_lost(session, depths=empty)] == [lost, also_lost]
        # Stamped as sent (a compare-and-set on that time): another reaper that saw the queue empty too sends
        # nothing, nor does a later look that sees the re-sent messages gone already (taken, about to be claimed).
        assert runs.resend_lost(session, depths=empty) == []
        assert runs.resend_lost(session, depths=seen(cpu=0)) == []
        assert runs.resend_lost(session, depths=seen(gpu=0)) == []                # only the queues asked about
    assert state_of(lost).state == RunState.QUEUED and state_of(lost).attempts == 0
    assert state_of(running).state == RunState.RETRYING


def test_a_queue_that_holds_fewer_messages_than_waiting_runs_gets_that_many_resent_after_the_backoff(workflow):
    backoff = runs.SHORT_QUEUE_RESEND_SECONDS
    oldest, older, recent = new_run(workflow), new_run(workflow), new_run(workflow)
    age(oldest, backoff + 20)
    age(older, backoff + 10)
    age(recent, runs.LOST_AFTER_SECONDS + 1)
    with session_scope() as session:
        assert runs.resend_lost(session, depths=seen(cpu=3)) == []            # all three messages are there
        # One message is missing: the run waiting longest is sent again, once; the others wait their turn.
        assert [run.id for run in runs.resend_lost(session, depths=seen(cpu=2))] == [oldest]
        assert [run.id for run in runs.resend_lost(session, depths=seen(cpu=1))] == [older]  # not recent: too young
        assert runs.resend_lost(session, depths=seen(cpu=1)) == []


def test_after_a_broker_restart_everything_sent_before_it_is_resent_though_new_work_fills_the_queue(workflow):
    before, sent_meanwhile = new_run(workflow), new_run(workflow)
    age(before, runs.LOST_AFTER_SECONDS + 1)
    first = runs.QueueDepths({"cpu": 0}, utcnow(), broker="redis-a")
    again = runs.QueueDepths({"cpu": 2}, utcnow(), broker="redis-a").after(first)
    restarted = runs.QueueDepths({"cpu": 2}, utcnow(), broker="redis-b").after(first)
    assert (again.restarted, restarted.restarted) == (False, True)
    assert runs.QueueDepths({"cpu": 2}, utcnow()).after(first).restarted is False   # cannot tell: not presumed
    assert restarted.empty("cpu") and not restarted.empty("gpu")                     # gpu was not asked about
    with session_scope() as session:
        assert runs.resend_lost(session, depths=again) == []          # two messages for two runs: none lost
        # The same two messages on a restarted broker are new work's: the run sent before the restart is lost
        # at once (not after SHORT_QUEUE_RESEND_SECONDS); the one sent within the grace may still arrive.
        assert [run.id for run in runs.resend_lost(session, depths=restarted)] == [before]
    assert state_of(sent_meanwhile).state == RunState.QUEUED


def test_a_resent_duplicate_changes_nothing(workflow):
    run_id = new_run(workflow)
    with session_scope() as session:
        assert runs.claim(session, run_id, "w1").attempts == 1
        assert runs.claim(session, run_id, "w2") is None                      # the lost message's copy, while it runs
        assert runs.finish(session, run_id, "w1", RunState.SUCCEEDED, outputs={"greeting": "Hi Ada"})
        assert runs.claim(session, run_id, "w3") is None                      # and after it finished
    run = state_of(run_id)
    assert (run.state, run.attempts, run.worker) == (RunState.SUCCEEDED, 1, "w1")


def record(run_id: str, attempt: int, **nodes: str) -> None:
    """Trace rows of one attempt: node name → its state as the worker last wrote it."""
    from runs.trace import Recording
    from store.db import autocommit_scope

    rec = Recording(run_id=run_id, attempt=attempt)
    for node, state in nodes.items():
        index = rec.started(node, "PromptBuilder")
        if state != "running":
            rec.ended(index, state=state)
    with autocommit_scope() as session:
        rec.flush(session)


def trace_of(run_id: str) -> list[tuple[int, str, str]]:
    with session_scope() as session:
        return [(row.attempt, row.node, row.state) for row in runs.node_runs(session=session, run_id=run_id)]


def test_nodes_a_dead_attempt_left_running_read_interrupted_once_the_run_moves_on(workflow):
    run_id = new_run(workflow)
    with session_scope() as session:
        runs.claim(session, run_id, "dead")
    record(run_id, 1, prompt="done", embedder="running")                      # SIGKILLed mid-embedder
    age(run_id, 0, heartbeat_at=utcnow() - timedelta(seconds=lease().seconds + 1))
    with session_scope() as session:
        assert ids(runs.reap(session)) == ([run_id], [])
    assert trace_of(run_id) == [(1, "prompt", "done"), (1, "embedder", "interrupted")]
    with session_scope() as session:
        rows = runs.node_runs(session=session, run_id=run_id)
        assert rows[1].error.startswith("interrupted: its worker stopped") and rows[0].error is None
        assert runs.claim(session, run_id, "alive").attempts == 2
    record(run_id, 1, late="running")                # the old worker was only paused: it wrote one more row
    record(run_id, 2, prompt="done", embedder="done")
    with session_scope() as session:
        assert runs.finish(session, run_id, "alive", RunState.SUCCEEDED)
    assert trace_of(run_id) == [(1, "prompt", "done"), (1, "embedder", "interrupted"), (1, "late", "interrupted"),
                                (2, "prompt", "done"), (2, "embedder", "done")]


def test_nodes_of_a_run_taken_over_or_failed_at_its_hard_limit_read_interrupted(workflow):
    taken, overdue = new_run(workflow), new_run(workflow)
    with session_scope() as session:
        runs.claim(session, taken, "dead")
        runs.claim(session, overdue, "stuck")
    record(taken, 1, embedder="running")
    record(overdue, 1, llm="running")
    age(taken, 0, heartbeat_at=utcnow() - timedelta(seconds=lease().seconds + 1))
    with session_scope() as session:
        assert runs.claim(session, taken, "alive").attempts == 2             # before any reaper saw it
        row = session.get(Run, overdue)
        row.started_at = utcnow() - timedelta(seconds=row.hard_time_limit + 60)
        session.commit()
        assert ids(runs.reap(session)) == ([], [overdue])
    assert trace_of(taken) == [(1, "embedder", "interrupted")]
    assert trace_of(overdue) == [(1, "llm", "interrupted")]


def test_the_operators_lease_decides_when_a_silent_worker_is_dead(workflow, monkeypatch):
    from stackyard.settings import reset_settings_cache
    from worker.reaper import Reaper

    assert (lease().seconds, lease().beat_seconds, lease().look_seconds, lease().alive_seconds) == (15, 3, 5, 20)
    run_id = new_run(workflow)
    with session_scope() as session:
        runs.claim(session, run_id, "quiet")
        session.get(Run, run_id).heartbeat_at = utcnow() - timedelta(seconds=10)
        session.commit()
        assert ids(runs.reap(session)) == ([], [])          # 10 s silent is alive under the default 15 s lease
        monkeypatch.setenv("STACKYARD_WORKER_LEASE_SECONDS", "6")
        reset_settings_cache()
        assert ids(runs.reap(session)) == ([run_id], [])    # … and dead under a 6 s one
    assert Reaper("w", ["cpu"]).interval == 2 and lease().beat_seconds == 1.2
