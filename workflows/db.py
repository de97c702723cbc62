"""Engine and sessions. SQLite by default (WAL + busy timeout, since web, workers and the scheduler
share the file), PostgreSQL by ``STACKYARD_DATABASE_URL``. The schema is created by Alembic."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError
from sqlmodel import Session, create_engine

from stackyard.settings import get_settings

MIGRATIONS = Path(__file__).parent / "migrations"
PING_AFTER_IDLE_SECONDS = 5.0


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
    engine = create_engine(url, pool_size=10, max_overflow=20, pool_use_lifo=True)
    event.listen(engine, "checkin", _idle_from_now)
    event.listen(engine, "checkout", _ping_if_idle(engine))
    if not get_settings().db_durable_commits:
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
