"""`stackyard up`: the embedded default (no servers) runs a workflow end to end and shuts down cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from stackyard.processes import STACKYARD
from tests.support.specs import greet
from tests.support.stack import free_port, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_up_serves_the_api_and_runs_on_its_own_worker(tmp_path: Path):
    port, milvus_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STACKYARD_")}
    env.update({"STACKYARD_DATA_DIR": str(tmp_path / "data"), "STACKYARD_MILVUS_LITE_PORT": str(milvus_port), "HF_HUB_OFFLINE": "1"})
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115
    proc = subprocess.Popen([*STACKYARD, "up", "--port", str(port)], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            assert proc.poll() is None, (tmp_path / "up.log").read_text()[-3000:]
            try:
                return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=120, message="stackyard up ready")
        # The address is printed once the server listens and the worker has checked in: after both say so.
        def announced() -> bytes | None:
            text = (tmp_path / "up.log").read_bytes()
            return text if b"Stackyard is ready" in text else None

        output = wait_until(announced, timeout=120, message="the ready line")
        ready = output.index(f"Stackyard is ready: open http://127.0.0.1:{port}/".encode())
        assert output.index(b"Uvicorn running on") < ready and output.index(b"INFO/celery.apps.worker]") < ready
        # generous: the worker is still importing torch on the other core when the web app is ready
        created = httpx.post(f"{base}/api/v1/workflows", json={"name": "greet", "spec": greet()}, timeout=30)
        assert created.status_code == 201, created.text
        result = httpx.post(f"{base}/api/v1/workflows/greet/runs", json={"inputs": {"name": "laptop"}, "wait": 60}, timeout=90).json()
        assert result["state"] == "succeeded", result
        assert result["outputs"] == {"greeting": "Hello laptop"}
        assert (tmp_path / "data" / "stackyard.db").exists() and (tmp_path / "data" / "broker.db").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise
    leftovers = subprocess.run(["pgrep", "-f", f"--port {milvus_port}|{tmp_path}"], capture_output=True, text=True).stdout.split()
    assert [pid for pid in leftovers if pid != str(os.getpid())] == []
