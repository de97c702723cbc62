"""Alembic environment: the URL comes from the caller's config (see ``store.db.migrate``)."""

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

from store.db import make_engine
from store.migrations import tables  # noqa: F401 - every room's tables, on SQLModel.metadata

config = context.config
MIGRATION_LOCK_KEY = 0x5374_6B79  # "Stky": any constant shared by every Stackyard process
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = make_engine(url)
    with engine.connect() as connection:
        context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Web pods, workers and the migrate Job may start together on a new database: one migrates,
                # the others wait here, then find the schema at head. Released at commit.
                connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
            context.run_migrations()
    engine.dispose()


run_migrations()
