"""Schedules: a job definition (workflow, item source, mapping, limits) fired at the ticks of a cron
expression in a timezone. ``stackyard beat`` calls :func:`fire_due` every second.

Exactly once per tick: every tick a scheduler handles becomes a :class:`ScheduleFire` row, unique per
(schedule, tick), inserted in the same transaction as the job it starts. Two schedulers that see the
same due tick both try; the second insert fails (IntegrityError), so that scheduler skips the tick and
no second job exists. ``next_fire_at`` only saves work (it is advanced with a compare-and-set).

Missed ticks (nothing ran at the tick: every scheduler down, database away):

* the newest missed tick still fires, late, if it is at most ``STACKYARD_SCHEDULE_GRACE_SECONDS``
  (default 300) old — one job, not one per missed tick;
* every older missed tick is not replayed: they are recorded as one ``missed`` fire (``missed`` = how
  many ticks, ``fire_time`` = the newest of them), so the history shows the gap;
* ticks while a schedule is paused are neither fired nor recorded; resuming starts at the next tick.

Cron expressions have 5 fields, or 6 with seconds last (``* * * * * */5``: every 5 s); they are evaluated
in the schedule's IANA timezone (``Europe/Berlin``), so a daily 09:00 stays at 09:00 across DST changes.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from jobs import lifecycle as jobs
from jobs.models import FireState, Job, Schedule, ScheduleFire, ScheduleState
from jobs.sources import PATH_FIELD, ItemRecords, item_inputs, parse_source, read_source
from runs.lifecycle import VersionInfo, version_info
from stackyard.errors import Conflict, NotFound, StackyardError
from stackyard.settings import get_settings
from store.clock import as_utc, utcnow
from store.db import race_safe, session_scope
from store.transitions import compare_and_set
from workflows import crud

log = logging.getLogger("stackyard.beat")
ALLOWED: dict[ScheduleState, frozenset[ScheduleState]] = {
    ScheduleState.PAUSED: frozenset({ScheduleState.ACTIVE}),
    ScheduleState.ACTIVE: frozenset({ScheduleState.PAUSED}),
}
MAX_TICKS_SCANNED = 10_000     # per schedule and pass; a longer outage is summarised, not enumerated


class BadSchedule(StackyardError):
    status = 422


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise BadSchedule(f"Unknown timezone '{name}'; use an IANA name such as 'UTC' or 'Europe/Berlin'.",
                          field="timezone") from None


def check_cron(cron: str) -> str:
    cron = " ".join(cron.split())
    if not croniter.is_valid(cron):
        raise BadSchedule(f"'{cron}' is not a cron expression; use 5 fields (minute hour day month weekday), "
                          "e.g. '0 9 * * 1-5', or 6 with seconds last, e.g. '* * * * * */10'.", field="cron")
    return cron


def next_fires(cron: str, tz: str, *, after: datetime | None = None, count: int = 5) -> list[datetime]:
    """The next ``count`` ticks strictly after ``after`` (default now), in the schedule's timezone."""
    it = croniter(check_cron(cron), (after or utcnow()).astimezone(zone(tz)))
    return [it.get_next(datetime) for _ in range(count)]


def _next_after(schedule: Schedule, moment: datetime) -> datetime:
    return next_fires(schedule.cron, schedule.timezone, after=moment, count=1)[0].astimezone(timezone.utc)


def transition(session: Session, schedule_id: str, to: ScheduleState, *, commit: bool = True,
               **fields: Any) -> Schedule | None:
    """The only writer of ``Schedule.state`` (compare-and-set)."""
    return compare_and_set(session, Schedule, schedule_id, to, ALLOWED[to], commit=commit, updated_at=utcnow(),
                           **fields)


def create_schedule(session: Session, *, name: str, workflow_ref: str, cron: str, timezone_name: str = "UTC",
                    source: dict[str, Any], version: int | None = None, mapping: dict[str, str] | None = None,
                    fixed: dict[str, Any] | None = None, concurrency: int | None = None,
                    rate_per_minute: float | None = None, now: datetime | None = None) -> Schedule:
    """Store a schedule after checking its cron, timezone and job definition against the workflow."""
    cron = check_cron(cron)
    zone(timezone_name)
    info = version_info(session, crud.get_version_id(session=session, ref=workflow_ref, number=version))
    _check_definition(info, source, mapping or {}, fixed or {})
    taken = f"A schedule named '{name}' already exists; choose another name."
    schedule = Schedule(name=name, workflow_id=info.workflow_id, version=version, cron=cron, timezone=timezone_name,
                        source=parse_source(source).model_dump(), mapping=mapping or {}, fixed=fixed or {},
                        concurrency=concurrency or get_settings().job_default_concurrency,
                        rate_per_minute=rate_per_minute, next_fire_at=utcnow())
    schedule.next_fire_at = _next_after(schedule, now or utcnow())

    def insert() -> Schedule:
        if session.exec(select(Schedule.id).where(Schedule.name == name)).first():
            raise Conflict(taken)
        session.add(schedule)
        session.flush()
        return schedule

    # The checks above are not rerun: a name taken or a workflow deleted meanwhile is answered at once.
    race_safe(session, insert, what=f"Creating schedule '{name}'", taken=taken,
              gone=f"Workflow '{workflow_ref}' was deleted while the schedule was being created; nothing was stored.")
    session.commit()
    return schedule


def _check_definition(info: VersionInfo, source: dict[str, Any], mapping: dict[str, str], fixed: dict[str, Any]) -> None:
    parsed = parse_source(source)
    # A folder may be empty today and filled before the next tick: check the mapping, not the files.
    records = ItemRecords("files", [{PATH_FIELD: "example.txt"}], {}) if parsed.type == "files" else read_source(parsed)
    item_inputs(info.spec, records, mapping=mapping, fixed=fixed, required=info.required)


def get_schedule(session: Session, *, ref: str) -> Schedule:
    """By id or by name."""
    schedule = session.get(Schedule, ref, populate_existing=True) or session.exec(
        select(Schedule).where(Schedule.name == ref)).first()
    if schedule is None:
        raise NotFound(f"No schedule '{ref}'; list them with GET /api/v1/schedules.")
    return schedule


def list_schedules(session: Session) -> list[Schedule]:
    return list(session.exec(select(Schedule).order_by(Schedule.name)))


def pause(session: Session, *, ref: str) -> Schedule:
    schedule = get_schedule(session=session, ref=ref)
    moved = transition(session, schedule.id, ScheduleState.PAUSED)
    if moved is None:
        get_schedule(session=session, ref=ref)   # deleted meanwhile: NotFound, not "already paused"
        raise Conflict(f"Schedule '{schedule.name}' is already paused.")
    return moved


def resume(session: Session, *, ref: str, now: datetime | None = None) -> Schedule:
    """Resume at the next tick after now (ticks while paused are skipped, not made up)."""
    schedule = get_schedule(session=session, ref=ref)
    moved = transition(session, schedule.id, ScheduleState.ACTIVE, next_fire_at=_next_after(schedule, now or utcnow()))
    if moved is None:
        get_schedule(session=session, ref=ref)   # deleted meanwhile: NotFound, not "not paused"
        raise Conflict(f"Schedule '{schedule.name}' is not paused.")
    return moved


def delete_schedule(session: Session, *, ref: str) -> None:
    def remove() -> None:
        schedule_id = get_schedule(session=session, ref=ref).id
        if not session.execute(delete(Schedule).where(col(Schedule.id) == schedule_id)).rowcount:
            raise NotFound(f"No schedule '{ref}'; list them with GET /api/v1/schedules.")

    race_safe(session, remove, what=f"Deleting schedule '{ref}'")
    session.commit()


def list_fires(session: Session, *, schedule_id: str, limit: int = 100) -> list[tuple[ScheduleFire, Job | None]]:
    """Newest first, each with the job it started."""
    query = (select(ScheduleFire, Job).join(Job, col(Job.id) == col(ScheduleFire.job_id), isouter=True)
             .where(ScheduleFire.schedule_id == schedule_id).order_by(col(ScheduleFire.fire_time).desc()).limit(limit))
    return [(fire, job) for fire, job in session.exec(query)]


# ── the tick ────────────────────────────────────────────────────────────────────────────────────────


def fire_due(*, scheduler: str, now: datetime | None = None) -> list[str]:
    """Handle every due tick of every active schedule; returns ids of the jobs this scheduler started
    (commit done: the caller dispatches them)."""
    now = now or utcnow()
    with session_scope() as session:
        due = list(session.exec(select(Schedule).where(Schedule.state == ScheduleState.ACTIVE,
                                                       col(Schedule.next_fire_at) <= now)))
    started: list[str] = []
    for schedule in due:
        try:
            started += _fire(schedule, now, scheduler)
        except Exception:  # noqa: BLE001 - one bad schedule must not stop the others
            log.exception("schedule %s: tick failed", schedule.name)
    return started


def _due_ticks(schedule: Schedule, now: datetime) -> tuple[list[datetime], int]:
    """(ticks from next_fire_at up to now, at most MAX_TICKS_SCANNED; how many more were skipped)."""
    tz = zone(schedule.timezone)
    first = as_utc(schedule.next_fire_at)
    ticks, it = [first], croniter(schedule.cron, first.astimezone(tz))
    while len(ticks) < MAX_TICKS_SCANNED:
        tick = it.get_next(datetime).astimezone(timezone.utc)
        if tick > now:
            return ticks, 0
        ticks.append(tick)
    last = croniter(schedule.cron, now.astimezone(tz)).get_prev(datetime).astimezone(timezone.utc)
    if last > ticks[-1]:
        ticks.append(last)
        return ticks, 1   # at least one more tick between; the exact count is not worth computing
    return ticks, 0


def _fire(schedule: Schedule, now: datetime, scheduler: str) -> list[str]:
    ticks, uncounted = _due_ticks(schedule, now)
    newest = ticks[-1]
    grace = get_settings().schedule_grace_seconds
    on_time = (now - newest).total_seconds() <= grace
    missed = ticks[:-1] if on_time else ticks
    started: list[str] = []
    if missed:
        more = f" (and more before: the scan stops at {MAX_TICKS_SCANNED})" if uncounted else ""
        _record(schedule, missed[-1], scheduler, state=FireState.MISSED, missed=len(missed) + uncounted,
                error=f"{len(missed)} tick(s) from {missed[0].isoformat()} to {missed[-1].isoformat()}{more} passed "
                      f"while no scheduler ran; ticks older than {grace:g} s (STACKYARD_SCHEDULE_GRACE_SECONDS) "
                      "are not replayed")
    if on_time:
        job_id = _start_job(schedule, newest, scheduler)
        if job_id:
            started.append(job_id)
    with session_scope() as session:  # everyone advances to the same value; the CAS keeps it monotonic
        session.execute(update(Schedule).where(col(Schedule.id) == schedule.id,
                                               col(Schedule.next_fire_at) == schedule.next_fire_at)
                        .values(next_fire_at=_next_after(schedule, max(newest, now))))
    return started


def _start_job(schedule: Schedule, tick: datetime, scheduler: str) -> str | None:
    """Insert the fire row and its job in one transaction; None if another scheduler has this tick."""
    try:
        with session_scope() as session:
            fire = ScheduleFire(schedule_id=schedule.id, fire_time=tick, scheduler=scheduler)
            session.add(fire)
            session.flush()  # the unique (schedule, tick) is the lock: the loser stops here
            job = jobs.create_job(session=session, workflow_ref=schedule.workflow_id, version=schedule.version,
                                  source=schedule.source, mapping=schedule.mapping, fixed=schedule.fixed,
                                  concurrency=schedule.concurrency, rate_per_minute=schedule.rate_per_minute,
                                  name=f"{schedule.name} @ {tick.isoformat()}", schedule_id=schedule.id, commit=False)
            fire.job_id = job.id
            session.add(fire)
        log.info("schedule %s: tick %s started job %s", schedule.name, tick.isoformat(), job.id)
        return job.id
    except IntegrityError:
        log.info("schedule %s: tick %s already fired by another scheduler", schedule.name, tick.isoformat())
        return None
    except StackyardError as exc:
        _record(schedule, tick, scheduler, state=FireState.FAILED, error=str(exc))
        return None


def _record(schedule: Schedule, tick: datetime, scheduler: str, **fields: Any) -> None:
    try:
        with session_scope() as session:
            session.add(ScheduleFire(schedule_id=schedule.id, fire_time=tick, scheduler=scheduler, **fields))
    except IntegrityError:
        pass  # another scheduler recorded this tick
