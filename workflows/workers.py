"""Which workers are alive and which queues they consume (rows renewed by each worker's reaper thread)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from workflows.models import WorkerBeat, utcnow

ALIVE_SECONDS = 20.0


def beat(session: Session, *, name: str, queues: list[str]) -> None:
    row = session.get(WorkerBeat, name) or WorkerBeat(name=name)
    row.queues, row.last_seen = ",".join(queues), utcnow()
    session.add(row)
    session.commit()


def forget(session: Session, *, name: str) -> None:
    session.execute(delete(WorkerBeat).where(col(WorkerBeat.name) == name))
    session.commit()


def live_queues(session: Session) -> set[str]:
    since = utcnow() - timedelta(seconds=ALIVE_SECONDS)
    rows = session.exec(select(WorkerBeat).where(col(WorkerBeat.last_seen) >= since)).all()
    return {queue for row in rows for queue in row.queues.split(",") if queue}
