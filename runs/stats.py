"""Aggregate figures read from the database: rows by state, duration histograms of runs and nodes, model
loads; the same helpers serve ``jobs.stats``. ``api.metrics`` exposes them to Prometheus.

The database is the source of truth for every worker in the cluster, so these figures are the same
whichever web replica is asked and survive worker restarts. Each function is one GROUP BY query.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func
from sqlmodel import Session, SQLModel, col, select

from runs.models import NodeRun, Run

DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
                                       120.0, 300.0, 600.0)


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts (``le`` → count of observations ≤ le), the total count and sum, in seconds."""

    buckets: tuple[tuple[float, int], ...]
    count: int
    total: float


def _label(value: Any) -> str:
    return str(getattr(value, "value", value))


def counts_by_state(session: Session, table: type[SQLModel], states: type[enum.Enum]) -> dict[str, int]:
    """Rows per state, with every state of ``states`` present (0 when none), so series never vanish."""
    rows = session.exec(select(table.state, func.count()).group_by(table.state)).all()
    return {member.value: 0 for member in states} | {_label(state): int(count) for state, count in rows}


def _elapsed_seconds(session: Session, start: Any, end: Any) -> Any:
    if session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def histograms(session: Session, seconds: Any, label: Any, *where: Any) -> dict[str, Histogram]:
    columns = [func.sum(case((seconds <= bound, 1), else_=0)) for bound in DURATION_BUCKETS]
    query = select(label, func.count(), func.coalesce(func.sum(seconds), 0.0), *columns).where(*where).group_by(label)
    result: dict[str, Histogram] = {}
    for row in session.exec(query).all():
        buckets = tuple(zip(DURATION_BUCKETS, (int(n or 0) for n in row[3:]), strict=True))
        result[_label(row[0])] = Histogram(buckets=buckets, count=int(row[1]), total=float(row[2]))
    return result


def run_durations(session: Session) -> dict[str, Histogram]:
    """Finished runs, from claim to finish, by final state."""
    seconds = _elapsed_seconds(session, col(Run.started_at), col(Run.finished_at))
    return histograms(session, seconds, col(Run.state), col(Run.started_at).is_not(None),
                       col(Run.finished_at).is_not(None))


def node_durations(session: Session) -> dict[str, Histogram]:
    """Finished node executions, by component class."""
    seconds = col(NodeRun.duration_ms) / 1000.0
    return histograms(session, seconds, col(NodeRun.component_type), col(NodeRun.duration_ms).is_not(None))


def model_loads(session: Session) -> int:
    """Models loaded by workers, summed over the runs that caused the loads."""
    return int(session.exec(select(func.coalesce(func.sum(Run.model_loads), 0))).one())
