"""Migrations: several processes starting together on a new PostgreSQL database all succeed; the migrated
schema is what the models say."""

from __future__ import annotations

import subprocess
import sys

import pytest
from sqlalchemy import create_engine, inspect, text

from tests.support.stack import postgres_database


@pytest.mark.integration
def test_processes_migrating_at_once_do_not_collide():
    with postgres_database() as url:
        script = "import sys; from store.db import migrate; migrate(sys.argv[1])"
        procs = [subprocess.Popen([sys.executable, "-c", script, url], stderr=subprocess.PIPE, text=True)
                 for _ in range(4)]
        outcomes = [(p.communicate(timeout=120)[1], p.returncode) for p in procs]
        failures = [err[-1500:] for err, code in outcomes if code != 0]
        assert failures == []
        engine = create_engine(url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
            assert {"run", "workflow", "job_item"} <= set(inspect(conn).get_table_names())
        engine.dispose()


def test_the_migrated_schema_matches_every_rooms_tables(database):
    """A table or column added to a room's models without a migration (or the other way round) shows here:
    Alembic's autogenerate finds nothing to add, drop or change after ``migrate``."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import store.migrations.tables  # noqa: F401 - every room's tables, as Alembic sees them
    from store.db import get_engine

    with get_engine().connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], diff
