"""Pooled PostgreSQL connections: checked before use only after sitting idle, and replaced when dead."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from store import db
from tests.support.stack import postgres_database


@pytest.fixture
def engine() -> Iterator:
    with postgres_database() as url:
        engine = db.make_engine(url)
        yield engine
        engine.dispose()


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


# ── race_safe: a read-then-write that loses a race answers instead of failing ──────────────────────────


class Attempts:
    """A ``work`` for race_safe that counts its runs; ``work(rival)`` gets ``rival`` on the first run only,
    to let a rival commit between its read and its write."""

    def __init__(self, work, rival=None):
        self.work, self.rival, self.count = work, rival, 0

    def __call__(self):
        self.count += 1
        return self.work(self.rival if self.count == 1 else None)


def _rival_creates(name: str):
    def create() -> None:
        from workflows.models import Workflow

        with db.Session(db.get_engine()) as other:
            other.add(Workflow(name=name))
            other.commit()

    return create


def _create_if_free(session, name: str, between=None):
    from sqlmodel import select

    from stackyard.errors import Conflict
    from workflows.models import Workflow

    if session.exec(select(Workflow).where(Workflow.name == name)).first():
        raise Conflict(f"'{name}' is taken")
    if between:
        between()
    workflow = Workflow(name=name)
    session.add(workflow)
    session.flush()
    return workflow


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_name_taken_between_check_and_insert_reruns_and_the_rerun_answers_conflict(database):
    from stackyard.errors import Conflict

    with db.session_scope() as session:
        work = Attempts(lambda rival: _create_if_free(session, "x", rival), rival=_rival_creates("x"))
        with pytest.raises(Conflict, match="'x' is taken"):
            db.race_safe(session, work, what="Creating 'x'")
    assert work.count == 2


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_taken_answers_a_unique_race_at_once_and_the_callers_earlier_writes_survive_a_rerun(database):
    from sqlmodel import select

    from stackyard.errors import Conflict
    from workflows.models import Workflow

    with db.session_scope() as session:
        session.add(Workflow(name="earlier"))
        work = Attempts(lambda rival: _create_if_free(session, "y", rival), rival=_rival_creates("y"))
        with pytest.raises(Conflict, match="^y is in use$"):
            db.race_safe(session, work, what="Creating 'y'", taken="y is in use")
        assert work.count == 1
        rerun = Attempts(lambda rival: _create_if_free(session, "z", rival), rival=_rival_creates("z"))
        with pytest.raises(Conflict):
            db.race_safe(session, rerun, what="Creating 'z'")
        db.race_safe(session, lambda: _create_if_free(session, "w"), what="Creating 'w'")
    with db.session_scope() as session:
        assert sorted(session.exec(select(Workflow.name))) == ["earlier", "w", "y", "z"]


def test_a_row_deleted_under_a_rename_reruns_and_the_rerun_answers_not_found(database):
    from stackyard.errors import NotFound
    from workflows import crud

    with db.session_scope() as session:
        crud.create_workflow(session=session, name="doomed")
    with db.session_scope() as session:
        crud.get_workflow(session=session, ref="doomed")       # in this session's identity map now
        with db.session_scope() as other:
            crud.delete_workflow(session=other, ref="doomed")
        with pytest.raises(NotFound, match="No workflow 'doomed'"):   # not StaleDataError
            crud.rename_workflow(session=session, ref="doomed", name="saved")


def test_a_deadlock_is_retried_a_bounded_number_of_times_then_conflict_names_what_collided(database, monkeypatch):
    from sqlalchemy.exc import OperationalError

    from stackyard.errors import Conflict

    class Deadlock(Exception):
        sqlstate = "40P01"

    monkeypatch.setattr(db.time, "sleep", lambda _seconds: None)
    with db.session_scope() as session:
        def deadlocks(_rival=None):
            raise OperationalError("DELETE FROM workflow", {}, Deadlock())

        work = Attempts(deadlocks)
        with pytest.raises(Conflict, match="Deleting 'a' collided with other changes .* 3 times in a row; try again"):
            db.race_safe(session, work, what="Deleting 'a'", attempts=3)
        assert work.count == 3
        once = Attempts(lambda _rival: "done" if once.count > 1 else deadlocks())
        assert db.race_safe(session, once, what="Deleting 'b'") == "done" and once.count == 2


def test_other_database_errors_are_not_races_and_pass_through_at_once(database):
    from sqlalchemy import text
    from sqlalchemy.exc import OperationalError, ProgrammingError

    with db.session_scope() as session:
        work = Attempts(lambda _rival: session.execute(text("SELECT * FROM no_such_table")))
        with pytest.raises((ProgrammingError, OperationalError)):
            db.race_safe(session, work, what="Reading")
        assert work.count == 1


@pytest.mark.parametrize("database", ["sqlite"], indirect=True)
def test_on_sqlite_the_write_holds_the_writer_lock_and_commits_only_with_the_caller(database):
    import sqlite3

    from sqlmodel import select

    from workflows.models import Workflow

    with db.Session(db.get_engine()) as session:
        db.race_safe(session, lambda: _create_if_free(session, "held"), what="Creating 'held'")
        rival = sqlite3.connect(database.split("///", 1)[1], timeout=0.1)
        with pytest.raises(sqlite3.OperationalError, match="locked"):      # no write can slip in before our commit
            rival.execute("INSERT INTO workflow (id, name, description, created_at, updated_at) "
                          "VALUES ('r', 'rival', '', '2026-01-01', '2026-01-01')")
        rival.close()
        session.rollback()                                                  # the savepoint did not commit early
    with db.session_scope() as session:
        assert list(session.exec(select(Workflow.name))) == []


def test_only_an_unreachable_or_refusing_database_counts_as_unavailable():
    """What the API answers 503 (try again) rather than 500: connection failures, too many clients, a server
    shutting down or starting up, an exhausted pool; a statement that fails stays a server error."""
    import psycopg
    from sqlalchemy.exc import OperationalError
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    from store.db import unavailable

    def wrapped(error: Exception) -> OperationalError:
        return OperationalError("SELECT 1", {}, error)

    refused = unavailable(wrapped(psycopg.errors.lookup("53300")("FATAL:  sorry, too many clients already")))
    assert refused is not None and "too many clients" in refused and "max_connections" in refused
    for down in (psycopg.OperationalError("connection failed: Connection refused"),     # no SQLSTATE: not reached
                 psycopg.errors.lookup("57P03")("the database system is starting up"),
                 psycopg.errors.lookup("08006")("server closed the connection unexpectedly")):
        assert "STACKYARD_DATABASE_URL" in unavailable(wrapped(down))
    assert "STACKYARD_DB_POOL_SIZE" in unavailable(PoolTimeout("QueuePool limit of size 10 overflow 20 reached"))
    for wrong in (psycopg.errors.lookup("57014")("canceling statement due to statement timeout"),
                  psycopg.errors.lookup("22012")("division by zero")):
        assert unavailable(wrapped(wrong)) is None
    assert unavailable(OperationalError("SELECT 1", {}, RuntimeError("database is locked"))) is None   # not PostgreSQL
    assert unavailable(ValueError("no")) is None


def test_sqlites_write_lock_held_past_the_timeout_counts_as_unavailable(tmp_path):
    """The laptop default: another process holding SQLite's write lock past the busy timeout is a 503 (try again),
    not a 500; a statement that is wrong stays a server error."""
    import sqlite3

    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import OperationalError

    from store.db import unavailable

    path = tmp_path / "locked.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")                       # another process's write, not committed yet
    engine = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.05})
    try:
        with pytest.raises(OperationalError) as busy, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        message = unavailable(busy.value)
        assert message is not None and "write lock" in message and "STACKYARD_DATABASE_URL" in message
        holder.execute("ROLLBACK")
        with pytest.raises(OperationalError) as wrong, engine.begin() as conn:
            conn.execute(text("INSERT INTO missing VALUES (1)"))
        assert unavailable(wrong.value) is None
    finally:
        engine.dispose()
        holder.close()
