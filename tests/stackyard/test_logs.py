"""Log lines: JSON objects carrying run ids when STACKYARD_LOG_FORMAT=json, readable text otherwise."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration   # each test runs a fresh interpreter: logging is configured once per process

SCRIPT = """
import logging
from stackyard.logs import configure_logging, log_context

configure_logging()
logging.getLogger("uvicorn.access").handlers.append(logging.StreamHandler())  # a server's own handler
configure_logging()
log = logging.getLogger("stackyard.test")
with log_context(run_id="run-1"):
    log.info("inside %s", "the run")
    with log_context(item_id="7"):
        log.warning("nested")
log.debug("hidden below the level")
logging.getLogger("haystack.core.pipeline.pipeline").info("Running component p")
logging.getLogger("uvicorn.access").info("GET /healthz 200")
try:
    1 / 0
except ZeroDivisionError:
    log.exception("boom")
"""


def run_script(**env: str) -> list[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env={**clean, **env}, capture_output=True, text=True,
                          timeout=60, check=True)
    return done.stderr.strip().splitlines()


def test_json_lines_carry_the_context_ids():
    lines = run_script(STACKYARD_LOG_FORMAT="json", STACKYARD_LOG_LEVEL="info")
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert [r["message"] for r in records[:3]] == ["inside the run", "nested", "GET /healthz 200"]
    assert records[0]["run_id"] == "run-1" and "item_id" not in records[0]
    assert records[1]["run_id"] == "run-1" and records[1]["item_id"] == "7" and records[1]["level"] == "WARNING"
    assert "run_id" not in records[2] and records[2]["logger"] == "uvicorn.access"
    assert records[3]["message"] == "boom" and "ZeroDivisionError" in records[3]["exception"]
    assert not any("hidden" in line or "Running component" in line for line in lines)  # the trace has those
    assert sum("GET /healthz" in line for line in lines) == 1  # the server's own handler was dropped


def test_text_lines_show_ids_and_honour_the_level():
    lines = run_script(STACKYARD_LOG_LEVEL="debug")
    assert any(line.endswith("inside the run [run_id=run-1]") for line in lines)
    assert any("hidden below the level" in line for line in lines)
    assert any("Running component p" in line for line in lines)  # per-component lines come back at DEBUG
    assert not any(line.startswith("{") for line in lines)
