"""The compose file's worker healthcheck, run as written against a real ``stackyard worker`` on Redis:
healthy while this host's worker answers, unhealthy for another host's name and once the worker is gone."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
import yaml

from tests.support.deploy import DEPLOY
from tests.support.stack import REDIS_URL, Stack, redis_db

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REDIS_DB = redis_db(10)  # its own database per xdist worker: a broadcast ping must reach only this test's worker


def healthcheck(stack: Stack, hostname: str) -> int:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    kind, command = compose["services"]["worker-cpu"]["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    env = {**stack.env(), "HOSTNAME": hostname, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    # Compose turns $$ into $ before the shell sees the command.
    return subprocess.run(["sh", "-c", command.replace("$$", "$")], env=env, timeout=60, capture_output=True).returncode


def test_worker_healthcheck_follows_this_hosts_worker(tmp_path: Path):
    redis.Redis.from_url(f"{REDIS_URL}/{REDIS_DB}").flushdb()
    stack = Stack(root=tmp_path, database_url=f"sqlite:///{tmp_path / 'stackyard.db'}", broker_url=f"{REDIS_URL}/{REDIS_DB}")
    try:
        worker = stack.start_worker(queues="cpu")
        assert healthcheck(stack, socket.gethostname()) == 0
        assert healthcheck(stack, "another-host") != 0
        stack.discard(worker)
        assert healthcheck(stack, socket.gethostname()) != 0
    finally:
        stack.stop()
