"""Haystack's usage telemetry and Gradio's analytics are off in every Stackyard process unless turned on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration   # each probe is a fresh interpreter, so nothing imported earlier counts

PROBE = "import {module}; import haystack.telemetry._telemetry as t; print('TELEMETRY', t.telemetry is not None)"


def telemetry_on(module: str, home: Path, **env: str) -> bool:
    # tests/conftest.py turns telemetry off for this process: start from an environment without it. HOME is
    # a temporary folder because Haystack writes its telemetry id there when it is on.
    clean = {k: v for k, v in os.environ.items() if k != "HAYSTACK_TELEMETRY_ENABLED"}
    result = subprocess.run([sys.executable, "-c", PROBE.format(module=module)], capture_output=True, text=True,
                            timeout=120, env={**clean, "HOME": str(home), **env})
    assert "TELEMETRY" in result.stdout, result.stderr[-3000:]
    return result.stdout.split("TELEMETRY")[-1].strip() == "True"


@pytest.mark.parametrize("module", ["worker.app", "workflows.build", "nodes.fetchers", "api.app", "stackyard.cli"])
def test_importing_an_entry_point_leaves_haystack_telemetry_off(module: str, tmp_path: Path):
    assert not telemetry_on(module, tmp_path)
    assert not (tmp_path / ".haystack").exists()


def test_a_user_can_turn_it_on(tmp_path: Path):
    assert telemetry_on("workflows.build", tmp_path, HAYSTACK_TELEMETRY_ENABLED="True")


def test_gradio_pages_send_no_usage_analytics(tmp_path: Path):
    probe = ("import stackyard.web, os; from ui.editor_page import build; "
             "print('ANALYTICS', build().analytics_enabled, os.environ['GRADIO_ANALYTICS_ENABLED'])")
    clean = {k: v for k, v in os.environ.items() if k != "GRADIO_ANALYTICS_ENABLED"}
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                            env={**clean, "HOME": str(tmp_path), "STACKYARD_DATA_DIR": str(tmp_path)})
    assert "ANALYTICS False False" in result.stdout, result.stderr[-3000:]
