"""Alembic environment: the URL comes from the caller's config (see ``workflows.db.migrate``)."""

from alembic import context
from sqlalchemy import pool
from sqlmodel import SQLModel

from workflows import models  # noqa: F401 - registers the tables on SQLModel.metadata
from workflows import jobs_models  # noqa: F401 - batch jobs and schedules
from workflows.db import make_engine

config = context.config
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
            context.run_migrations()
    engine.dispose()


run_migrations()
