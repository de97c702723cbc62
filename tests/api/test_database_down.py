"""A web process whose PostgreSQL refuses its connections (too many clients for its role) or cut them: the API
answers 503 with Retry-After and a message naming the fix, in the OpenAI error shape on /v1, never a 500; once the
database takes connections again, so does the web process (real web process; a real PostgreSQL role limit)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.support.specs import greet
from tests.support.stack import POSTGRES_ADMIN_URL, REDIS_URL, Stack, postgres_stack, redis_db

pytestmark = [pytest.mark.integration]


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[Stack, str]]:
    """A stack whose web process connects as a role of its own (connection limit 50); the role's name."""
    role = f"stackyard_limited_{os.getpid()}"
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 50'))
    try:
        with postgres_stack(tmp_path, broker_url=f"{REDIS_URL}/{redis_db(9)}") as stack:
            stack.start_web()                                   # as the owner: migrates, and makes a workflow
            stack.create("greet", greet())
            owner = create_engine(stack.database_url, isolation_level="AUTOCOMMIT")
            with owner.connect() as conn:
                for grant in ("USAGE ON SCHEMA public", "ALL ON ALL TABLES IN SCHEMA public",
                              "ALL ON ALL SEQUENCES IN SCHEMA public"):
                    conn.execute(text(f'GRANT {grant} TO "{role}"'))
            owner.dispose()
            stack.discard(stack.web)
            user, _, rest = stack.database_url.partition("@")
            stack.start_web(STACKYARD_DATABASE_URL=f"{user.rsplit('//', 1)[0]}//{role}@{rest}")
            yield stack, role
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP ROLE IF EXISTS "{role}"'))
        admin.dispose()


def _limit(role: str, connections: int) -> None:
    """Set the role's connection limit; at 0, also end its open connections (as a restart or an operator would)."""
    admin = create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'ALTER ROLE "{role}" CONNECTION LIMIT {connections}'))
        if connections == 0:
            conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
                         {"role": role})
    admin.dispose()


def test_a_database_refusing_connections_is_a_503_naming_the_fix_and_the_web_recovers(limited):
    stack, role = limited
    assert [w["name"] for w in stack.api("GET", "/api/v1/workflows").json()] == ["greet"]
    key = stack.api("POST", "/api/v1/keys", json={}).json()["key"]
    _limit(role, 0)
    for _ in range(3):      # a pooled connection cut under it, then new ones refused: the same answer
        refused = stack.api("GET", "/api/v1/workflows")
        assert refused.status_code == 503, refused.text
        assert refused.headers["Retry-After"] == "1"
        error = refused.json()["error"]
        assert error["type"] == "DatabaseUnavailable"
        assert "STACKYARD_DATABASE_URL" in error["message"] and "max_connections" in error["message"]
    openai = stack.api("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})   # the key's lookup too
    assert openai.status_code == 503 and openai.json()["error"]["code"] == "DatabaseUnavailable", openai.text
    assert "Traceback" not in (stack.root / "web.log").read_text()
    _limit(role, 50)
    assert [w["name"] for w in stack.api("GET", "/api/v1/workflows").json()] == ["greet"]
