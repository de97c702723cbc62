"""Engine and sessions. SQLite by default (WAL + busy timeout, since web, workers and the scheduler
share the file), PostgreSQL by ``STACKYARD_DATABASE_URL``. The schema is created by Alembic.

Every write that reads before it writes goes through :func:`race_safe`, so concurrent requests get an
answer (the next number, 404, 409) instead of a unique-violation, stale-row or deadlock 500."""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError
from sqlalchemy.orm.exc import ObjectDeletedError, StaleDataError
from sqlmodel import Session, create_engine

from stackyard.errors import Conflict, NotFound
from stackyard.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"
PING_AFTER_IDLE_SECONDS = 5.0
RACE_ATTEMPTS = 5
T = TypeVar("T")


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable at checkpoints, no fsync per commit
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    settings = get_settings()
    engine = create_engine(url, pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow,
                           pool_use_lifo=True)
    event.listen(engine, "checkin", _idle_from_now)
    event.listen(engine, "checkout", _ping_if_idle(engine))
    if not settings.db_durable_commits:
        event.listen(engine, "connect", _async_commits)
    return engine


def _idle_from_now(_dbapi_connection, record) -> None:  # noqa: ANN001 - pool event
    record.info["idle_since"] = time.monotonic()


def _ping_if_idle(engine: Engine):
    """Check a pooled connection before use only if it sat idle (it may have been cut, e.g. by a database
    restart). SQLAlchemy's ``pool_pre_ping`` pings on every checkout: a round trip on every transaction of
    a run's hot path, for connections used milliseconds ago. A failed ping makes the pool open a new one."""

    def checkout(dbapi_connection, record, _proxy) -> None:  # noqa: ANN001 - pool event
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # noqa: BLE001 - any failure means the connection is unusable
            raise DisconnectionError(f"pooled connection failed its ping: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection failed its ping")

    return checkout


def _async_commits(dbapi_connection, _record) -> None:  # noqa: ANN001 - DB-API connection
    # A commit returns before its WAL record reaches disk (PostgreSQL's synchronous_commit=off): a server
    # crash can lose the last fraction of a second of commits, never consistency. Stackyard tolerates
    # that by design (lost run transitions are re-driven by the reaper; effects are idempotent), and it
    # removes an fsync from every state change, node trace row and heartbeat.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit TO off")
    cursor.close()
    dbapi_connection.commit()


@functools.lru_cache(maxsize=4)
def _engine_for(url: str) -> Engine:
    return make_engine(url)


def get_engine() -> Engine:
    return _engine_for(get_settings().resolved_database_url)


def migrate(url: str | None = None) -> None:
    """Bring the schema to the newest Alembic revision (idempotent)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", (url or get_settings().resolved_database_url).replace("%", "%%"))
    command.upgrade(config, "head")


@contextmanager
def session_scope() -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@functools.lru_cache(maxsize=4)
def _autocommit(engine: Engine) -> Engine:
    # Keyed on the engine, not the URL: a replaced engine (cache cleared, settings changed) gets its own.
    return engine.execution_options(isolation_level="AUTOCOMMIT")


@contextmanager
def autocommit_scope() -> Iterator[Session]:
    """A session in autocommit, for hot paths: each statement commits on its own, without the BEGIN and
    COMMIT round trips of a transaction. For lookups, and for writes that are whole in one statement (a
    compare-and-set ``UPDATE … RETURNING``, one multi-row ``INSERT``). Use :func:`session_scope` when
    several statements must stand or fall together."""
    with Session(_autocommit(get_engine()), expire_on_commit=False) as session:
        yield session


def get_session() -> Iterator[Session]:
    """FastAPI dependency: one session per request."""
    with session_scope() as session:
        yield session


# SQLSTATE classes and codes that say the database cannot serve now, not that a statement is wrong: connection
# exceptions, insufficient resources (too many connections, out of memory or disk), shutting down, starting up.
# SQLite: another process held the write lock past the busy timeout (SQLITE_BUSY, SQLITE_LOCKED, any extended form).
_UNAVAILABLE_CLASSES, _UNAVAILABLE_CODES, _SQLITE_BUSY = ("08", "53"), ("57P01", "57P02", "57P03"), (5, 6)


def unavailable(exc: BaseException) -> str | None:
    """What to tell a caller when ``exc`` means PostgreSQL could not be reached, refused a connection or dropped
    it, every pooled connection stayed busy, or SQLite's write lock stayed taken (a retry later may succeed: HTTP
    503); None for any other error."""
    if isinstance(exc, SATimeoutError):
        return ("Every database connection of this process stayed busy; try again shortly. If it lasts, raise "
                "STACKYARD_DB_POOL_SIZE / STACKYARD_DB_MAX_OVERFLOW within PostgreSQL's max_connections.")
    if not isinstance(exc, OperationalError):
        return None
    orig, code = getattr(exc, "orig", None), _code(exc)
    if isinstance(code, int):
        if code & 0xFF not in _SQLITE_BUSY:
            return None
        return ("The database is busy: another process held SQLite's write lock for longer than its timeout; try "
                "again shortly. For many concurrent writers, run on PostgreSQL (STACKYARD_DATABASE_URL).")
    if type(orig).__module__.split(".")[0] != "psycopg":
        return None
    if code is not None and code[:2] not in _UNAVAILABLE_CLASSES and code not in _UNAVAILABLE_CODES:
        return None
    reason = str(orig).strip().splitlines()[-1][:300] if str(orig).strip() else type(orig).__name__
    return (f"The database is unavailable ({reason}); try again shortly. If it lasts, check that PostgreSQL runs "
            "at STACKYARD_DATABASE_URL and that its max_connections covers every Stackyard process "
            "(each opens up to STACKYARD_DB_POOL_SIZE + STACKYARD_DB_MAX_OVERFLOW).")


def _code(exc: BaseException) -> str | int | None:
    """The driver's error code under a SQLAlchemy error: PostgreSQL's SQLSTATE (text) or SQLite's extended result
    code (a number); None when the driver gave none (a connection that never opened)."""
    orig = getattr(exc, "orig", None)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None) or getattr(orig, "sqlite_errorcode", None)


# How a statement lost a race, by SQLSTATE (PostgreSQL) or extended result code (SQLite), never by message.
_BUSY, _TAKEN, _GONE = "busy", "taken", "gone"
_RACES = {"40P01": _BUSY, "40001": _BUSY, "23505": _TAKEN, "23503": _GONE,    # deadlock, serialization, unique, FK
          517: _BUSY, 2067: _TAKEN, 1555: _TAKEN, 787: _GONE}                 # BUSY_SNAPSHOT, UNIQUE, PRIMARYKEY, FK


def race_safe(session: Session, work: Callable[[], T], *, what: str, taken: str | None = None,
              gone: str | None = None, attempts: int = RACE_ATTEMPTS) -> T:
    """Run ``work`` — one read-then-write — so that losing a race to a concurrent request gives an answer
    (the row it wrote, NotFound, Conflict), never an unhandled database error.

    ``work`` runs in a savepoint of ``session``: what the caller wrote before stays, and the caller commits as
    usual (``work`` itself must not commit). When it loses a race — a deadlock or serialization failure, a
    unique key another request just took, a row (or the parent a foreign key names) another request just
    deleted — the savepoint is rolled back and ``work`` runs again. It then reads the winner's committed
    change and answers as if it had come second: a name check raises Conflict, a lookup NotFound, a
    ``max + 1`` takes the next number, an upsert updates. ``taken``/``gone``, when given, answer a unique or a
    deleted-row race at once with Conflict/NotFound and that message, for work too costly to run again.
    After ``attempts`` lost races, Conflict naming ``what``. Not for :func:`autocommit_scope` sessions.

    Example::

        race_safe(session, lambda: _rename(session, ref, name), what=f"Renaming workflow '{ref}'")
    """
    session.flush()  # the caller's own pending changes fail (or not) as theirs, outside the retries
    lock_sqlite_for_writing(session)
    for attempt in range(1, attempts + 1):
        try:
            with session.begin_nested():
                return work()
        except (DBAPIError, StaleDataError, ObjectDeletedError) as exc:
            race = _race(exc)
            if race is None:
                raise
            if race == _TAKEN and taken is not None:
                raise Conflict(taken) from None
            if race == _GONE and gone is not None:
                raise NotFound(gone) from None
        session.expire_all()  # the next attempt reads what the winner committed, not this session's copies
        time.sleep(random.uniform(0.0, 0.01 * attempt))  # de-synchronise writers that collided
    raise Conflict(f"{what} collided with other changes to the same data {attempts} times in a row; try again.")


def rerun_committed(session: Session, work: Callable[[], T], *, what: str, gone: str | None = None,
                    attempts: int = RACE_ATTEMPTS) -> T:
    """:func:`race_safe` for ``work`` that commits itself (a hot path's single INSERT, a dispatch plan): on a
    lost race the session is rolled back and ``work`` runs again; a row or FK parent deleted meanwhile is
    NotFound(``gone``) when given; after ``attempts`` lost races, Conflict naming ``what``. No savepoint and
    no writer lock up front, so the usual, uncontended case costs nothing extra."""
    for attempt in range(1, attempts + 1):
        try:
            return work()
        except (DBAPIError, StaleDataError, ObjectDeletedError) as exc:
            session.rollback()
            race = _race(exc)
            if race is None:
                raise
            if race == _GONE and gone is not None:
                raise NotFound(gone) from None
        time.sleep(random.uniform(0.0, 0.01 * attempt))
    raise Conflict(f"{what} collided with other changes to the same data {attempts} times in a row; try again.")


def _race(exc: Exception) -> str | None:
    if isinstance(exc, StaleDataError | ObjectDeletedError):  # UPDATE/DELETE or a reload found the row gone
        return _GONE
    return _RACES.get(_code(exc))


def lock_sqlite_for_writing(session: Session) -> None:
    """On SQLite, take the single writer lock before the reads of a read-then-write (no-op on PostgreSQL, where
    row locks do this)."""
    # pysqlite sends BEGIN only before the first write: the reads before it would see no lock, and a
    # SAVEPOINT opened outside a transaction is the outermost one and commits when released. Take
    # SQLite's single writer lock now instead: the read-then-write is then serialised, as on PostgreSQL
    # the row locks and constraint checks make it.
    connection = session.connection()
    if connection.dialect.name == "sqlite" and not connection.connection.dbapi_connection.in_transaction:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
