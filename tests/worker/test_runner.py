"""The attempt executor in this process (no Celery): the soft time limit holds even when nothing raises Celery's
exception, as when a library's catch-all swallowed it."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from runs.models import RunState
from stackyard.settings import reset_settings_cache
from store.db import session_scope
from tests.support.specs import chat
from tests.support.stack import TINY
from tests.support.workflows import state_of
from worker.runner import execute

pytestmark = pytest.mark.slow


def test_a_run_past_its_soft_time_limit_is_stopped_by_its_heartbeat(database, tiny_model: Path,
                                                                     monkeypatch: pytest.MonkeyPatch):
    from runs import lifecycle
    from workflows import crud
    from workflows.spec import spec_from_dict

    monkeypatch.setenv("STACKYARD_MODEL_PATHS", json.dumps({TINY: str(tiny_model)}))
    monkeypatch.setenv("STACKYARD_RUN_SOFT_TIME_LIMIT", "1")
    reset_settings_cache()
    with session_scope() as session:
        crud.create_workflow(session=session, name="long", spec=spec_from_dict(chat(TINY, tokens=1800, chain=8)))
        run_id = lifecycle.create_run(session=session, workflow_ref="long", inputs={"question": "long"}).id
    started = time.monotonic()
    assert execute(run_id, worker="w") == RunState.FAILED
    assert time.monotonic() - started < 30                      # the whole chain would take minutes
    assert "exceeded the soft time limit of 1 s" in state_of(run_id).error
    reset_settings_cache()
