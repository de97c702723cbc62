"""Fixtures that run real Stackyard processes: Redis + PostgreSQL, or the embedded SQLite broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.stack import Stack, process_stack


@pytest.fixture(scope="module", params=["redis", "embedded"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path,
          cold_model: Path) -> Iterator[Stack]:
    """Web server running; tests start the workers they need."""
    gen = process_stack(request.param, tmp_path_factory.mktemp(f"stack-{request.param}"), tiny_model, cold_model)
    stack = next(gen)
    stack.kind = request.param
    stack.start_web()
    yield stack
    for _ in gen:
        pass
