"""Which workers are alive and which queues they consume (rows renewed by each worker's reaper thread)."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import Session, col, select

from runs.attempts import lease
from runs.models import WorkerBeat
from store.clock import utcnow


def beat(session: Session, *, name: str, queues: list[str]) -> None:
    row = session.get(WorkerBeat, name) or WorkerBeat(name=name)
    row.queues, row.last_seen = ",".join(queues), utcnow()
    session.add(row)
    session.flush()


def live_workers(session: Session) -> dict[str, int]:
    """Worker processes that beat within the last ``Lease.alive_seconds``, per queue they consume."""
    since = utcnow() - timedelta(seconds=lease().alive_seconds)
    counts: dict[str, int] = {}
    for queues in session.exec(select(WorkerBeat.queues).where(col(WorkerBeat.last_seen) >= since)).all():
        for queue in filter(None, queues.split(",")):
            counts[queue] = counts.get(queue, 0) + 1
    return counts


def live_queues(session: Session) -> set[str]:
    return set(live_workers(session))
