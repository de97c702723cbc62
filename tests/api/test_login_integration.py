"""Admin login on a real web process with Redis counters: parallel guesses stop at the limit, a copied
cookie dies at logout (the session row is gone), and the right password works once the window ends."""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.stack import REDIS_URL, Stack, postgres_stack, redis_db

pytestmark = [pytest.mark.integration]

PASSWORD = "a long admin password"
LIMIT, LOCKOUT = 4, 10


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with postgres_stack(Path(tmp_path_factory.mktemp("login")), broker_url=f"{REDIS_URL}/{redis_db(7)}", extra_env={
            "STACKYARD_ADMIN_PASSWORD": PASSWORD, "STACKYARD_LOGIN_FAILURES_PER_CLIENT": str(LIMIT),
            "STACKYARD_LOGIN_LOCKOUT_SECONDS": str(LOCKOUT)}) as stack:
        stack.start_web()
        yield stack


def basic(password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"admin:{password}".encode()).decode()}


def test_parallel_guesses_stop_at_the_limit_and_the_password_works_after_the_window(stack: Stack):
    time.sleep(LOCKOUT - time.time() % LOCKOUT + 0.05)  # all guesses in one window
    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(lambda i: stack.api("GET", "/api/v1/workflows", headers=basic(f"g{i}")).status_code,
                              range(40)))
    assert (codes.count(401), codes.count(429)) == (LIMIT, 40 - LIMIT)
    locked = stack.api("POST", "/login", data={"password": PASSWORD, "next": "/"})
    assert locked.status_code == 429 and 1 <= int(locked.headers["Retry-After"]) <= LOCKOUT
    time.sleep(int(locked.headers["Retry-After"]) + 0.2)
    assert stack.api("GET", "/api/v1/workflows", headers=basic(PASSWORD)).status_code == 200


def test_a_cookie_copied_before_logout_is_refused_after_it(stack: Stack):
    with httpx.Client(base_url=stack.base_url, follow_redirects=False) as browser:
        assert browser.post("/login", data={"password": PASSWORD, "next": "/"}).status_code == 303
        copied = browser.cookies.get("stackyard_session")
        assert browser.get("/api/v1/workflows").status_code == 200
        assert browser.post("/logout").status_code == 303
    with httpx.Client(base_url=stack.base_url, cookies={"stackyard_session": copied}) as thief:
        assert thief.get("/api/v1/workflows").status_code == 401
