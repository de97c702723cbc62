"""Pooled PostgreSQL connections: checked before use only after sitting idle, and replaced when dead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.conftest import _postgres_database
from workflows import db


@pytest.fixture
def engine() -> Iterator:
    databases = _postgres_database()
    engine = db.make_engine(next(databases))
    yield engine
    engine.dispose()
    for _ in databases:
        pass


def backend_pid(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_busy_connection_is_reused_without_a_ping_and_an_idle_dead_one_is_replaced(engine, monkeypatch):
    first = backend_pid(engine)
    pings = []
    real_ping = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or real_ping(conn))
    assert backend_pid(engine) == first and pings == []          # used a moment ago: no ping, same connection
    admin = create_engine(engine.url, poolclass=NullPool)
    with admin.connect() as conn:                                  # the server drops it (restart, idle timeout…)
        conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", 0.0)       # now it counts as idle
    second = backend_pid(engine)                                   # the ping fails, the pool opens a new one
    assert pings and second != first
