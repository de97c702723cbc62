"""Schedules on SQLite and PostgreSQL: cron and timezone checks, the preview, one fire per tick even when
schedulers race, the missed-tick policy, pause/resume, and fires that cannot start a job."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone

import pytest
from sqlmodel import select

from jobs import schedules
from jobs.models import FireState, Job, ScheduleFire, ScheduleState
from jobs.schedules import BadSchedule
from jobs.sources import BadJobSource
from stackyard.errors import Conflict
from store.db import session_scope
from workflows import crud
from workflows.spec import spec_from_dict

PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
T0 = datetime(2026, 3, 28, 12, 0, 0, tzinfo=timezone.utc)


@pytest.fixture
def greet(database) -> str:
    spec = spec_from_dict({"components": {"p": {"type": PROMPT, "init_parameters": {"template": "Hi {{ name }}"}}},
                           "inputs": {"name": ["p.name"]}, "outputs": {"greeting": "p.prompt"}})
    with session_scope() as session:
        crud.create_workflow(session=session, name="greet", spec=spec)
    return "greet"


def make(greet: str, cron: str = "* * * * * */10", name: str = "every10", **kwargs):
    kwargs.setdefault("source", {"type": "csv", "data": "name\nAda\nBob\n"})
    with session_scope() as session:
        return schedules.create_schedule(session=session, name=name, workflow_ref=greet, cron=cron, now=T0, **kwargs)


def fires(schedule_id: str) -> list[ScheduleFire]:
    with session_scope() as session:
        return list(session.exec(select(ScheduleFire).where(ScheduleFire.schedule_id == schedule_id)
                                 .order_by(ScheduleFire.fire_time)))


def jobs_of(schedule_id: str) -> list[Job]:
    with session_scope() as session:
        return list(session.exec(select(Job).where(Job.schedule_id == schedule_id)))


def test_cron_and_timezone_are_checked_and_previewed():
    with pytest.raises(BadSchedule, match="not a cron expression") as err:
        schedules.check_cron("every minute")
    assert err.value.field == "cron"
    with pytest.raises(BadSchedule, match="Unknown timezone 'Mars/Olympus'"):
        schedules.next_fires("0 9 * * *", "Mars/Olympus")
    # 09:00 in Berlin stays 09:00 local across the DST change of 2026-03-29 (UTC 08:00 → 07:00).
    after = datetime(2026, 3, 27, 12, 0, tzinfo=timezone.utc)
    berlin = schedules.next_fires("0 9 * * *", "Europe/Berlin", after=after, count=3)
    assert [f.hour for f in berlin] == [9, 9, 9]
    assert [f.astimezone(timezone.utc).hour for f in berlin] == [8, 7, 7]
    assert schedules.next_fires("* * * * * */15", "UTC", after=T0, count=2) == [T0 + timedelta(seconds=15),
                                                                                   T0 + timedelta(seconds=30)]


def test_a_schedule_checks_its_job_definition_when_created(greet):
    schedule = make(greet)
    assert schedule.next_fire_at == T0 + timedelta(seconds=10) and schedule.state == ScheduleState.ACTIVE
    with pytest.raises(Conflict, match="already exists"):
        make(greet)
    with pytest.raises(BadJobSource, match="does not declare"):
        make(greet, name="other", mapping={"nope": "name"})
    # A folder may be empty when the schedule is made; only the mapping is checked.
    assert make(greet, name="folder", source={"type": "files", "paths": ["inbox"]}, mapping={"name": "path"})


def test_each_tick_fires_once_even_when_schedulers_race(greet):
    schedule = make(greet)
    tick = T0 + timedelta(seconds=10)
    assert schedules.fire_due(scheduler="a", now=tick - timedelta(seconds=1)) == []
    barrier = threading.Barrier(4)
    started: list[str] = []

    def scheduler(name: str) -> None:
        barrier.wait()
        started.extend(schedules.fire_due(scheduler=name, now=tick + timedelta(milliseconds=5)))

    threads = [threading.Thread(target=scheduler, args=(f"s{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 1
    assert [(f.fire_time, f.state, f.job_id) for f in fires(schedule.id)] == [(tick, FireState.FIRED, started[0])]
    job = jobs_of(schedule.id)[0]
    assert (job.id, job.total, job.name) == (started[0], 2, f"every10 @ {tick.isoformat()}")
    # A scheduler that saw the old next_fire_at and comes late loses on the unique (schedule, tick).
    assert schedules._start_job(schedule, tick, "late") is None
    assert schedules.fire_due(scheduler="a", now=tick + timedelta(seconds=1)) == []
    with session_scope() as session:
        assert schedules.get_schedule(session=session, ref="every10").next_fire_at == tick + timedelta(seconds=10)


def test_missed_ticks_fire_once_within_grace_and_are_recorded(greet, monkeypatch):
    from stackyard.settings import get_settings

    monkeypatch.setattr(get_settings(), "schedule_grace_seconds", 60.0)
    schedule = make(greet)
    # Down for 100 s: ticks at +10 … +100; the newest is 5 s old, within grace: it fires once, late.
    now = T0 + timedelta(seconds=105)
    assert len(schedules.fire_due(scheduler="a", now=now)) == 1
    missed, fired = fires(schedule.id)
    assert (missed.state, missed.missed, missed.fire_time) == (FireState.MISSED, 9, T0 + timedelta(seconds=90))
    assert "not replayed" in missed.error
    assert (fired.state, fired.fire_time) == (FireState.FIRED, T0 + timedelta(seconds=100))
    # With a 5 s grace, recovering 7 s after the newest tick: every tick is missed, none fires.
    monkeypatch.setattr(get_settings(), "schedule_grace_seconds", 5.0)
    assert schedules.fire_due(scheduler="a", now=T0 + timedelta(seconds=207)) == []
    last = fires(schedule.id)[-1]
    assert (last.state, last.missed, last.fire_time) == (FireState.MISSED, 10, T0 + timedelta(seconds=200))
    assert len(jobs_of(schedule.id)) == 1


def test_paused_schedules_do_not_fire_and_resume_at_the_next_tick(greet):
    schedule = make(greet)
    with session_scope() as session:
        assert schedules.pause(session=session, ref="every10").state == ScheduleState.PAUSED
        with pytest.raises(Conflict, match="already paused"):
            schedules.pause(session=session, ref="every10")
    assert schedules.fire_due(scheduler="a", now=T0 + timedelta(seconds=3600)) == []
    resume_at = T0 + timedelta(seconds=3603)
    with session_scope() as session:
        resumed = schedules.resume(session=session, ref=schedule.id, now=resume_at)
    assert resumed.state == ScheduleState.ACTIVE and resumed.next_fire_at == T0 + timedelta(seconds=3610)
    assert schedules.fire_due(scheduler="a", now=T0 + timedelta(seconds=3610)) and fires(schedule.id)[0].missed == 0


def test_a_tick_that_cannot_start_a_job_is_recorded_as_failed(greet):
    schedule = make(greet, name="folder", source={"type": "files", "paths": ["inbox"]}, mapping={"name": "path"})
    tick = schedule.next_fire_at
    assert schedules.fire_due(scheduler="a", now=tick) == []
    (fire,) = fires(schedule.id)
    assert fire.state == FireState.FAILED and "No file or folder 'inbox'" in fire.error and fire.job_id is None
    with session_scope() as session:
        history = schedules.list_fires(session=session, schedule_id=schedule.id)
    assert [(f.state, job) for f, job in history] == [(FireState.FAILED, None)]


def test_jobs_page_schedule_handlers(greet):
    from ui import jobs_page

    assert jobs_page.preview("0 9 * * *", "Europe/Berlin").startswith("Next fires: ")
    assert "not a cron expression" in jobs_page.preview("soon", "UTC")
    status, table = jobs_page.create_schedule("nightly", "0 2 * * *", "UTC", "greet", None, jobs_page.SOURCES[2], None, "",
                                              '{"name": "Ada"}', "", "", 2, None)
    assert status.startswith("✅ Schedule 'nightly' created") and table[0][:5] == ["nightly", "greet", "0 2 * * *", "UTC", "active"]
    status, table = jobs_page.set_paused("nightly", True)
    assert status == "✅ 'nightly' paused" and table[0][4] == "paused"
    assert jobs_page.set_paused("nightly", True)[0].startswith("⚠️")
    assert jobs_page.set_paused("nightly", False)[1][0][4] == "active"
    assert jobs_page.fires_table("nightly") == [] and jobs_page.fires_table("nope") == []
