"""The compare-and-set UPDATE behind every state machine (runs, jobs): one statement, one round trip.

Each state machine keeps its own enum, allowed transitions and ``transition()`` function; this is the
shared mechanism they call. Core, not ORM: it is on every run's hot path, where the ORM's bookkeeping
cost more than the query.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from sqlmodel import Session, SQLModel

from workflows.models import utcnow

T = TypeVar("T", bound=SQLModel)


def compare_and_set(session: Session, model: type[T], row_id: Any, to: Any, allowed_from: Collection[Any], *,
                    terminal: bool = False, where: Any = None, commit: bool = True, **fields: Any) -> T | None:
    """Set ``state`` to ``to`` on row ``row_id`` if its state is in ``allowed_from`` (and ``where`` holds).

    Returns the updated row, or None if it did not move. A terminal move also stamps ``finished_at``.
    """
    values: dict[str, Any] = {"state": to, **fields}
    if terminal:
        values.setdefault("finished_at", utcnow())
    table = model.__table__
    statement = update_statement(table, row_id, allowed_from).values(**values)
    if where is not None:
        statement = statement.where(where)
    row = session.connection().execute(statement.returning(*table.c)).mappings().first()
    if commit:
        session.commit()
    return model.model_validate(dict(row)) if row is not None else None


def update_statement(table: Any, row_id: Any, allowed_from: Collection[Any]) -> Any:
    from sqlalchemy import update

    return update(table).where(table.c.id == row_id, table.c.state.in_(allowed_from))
