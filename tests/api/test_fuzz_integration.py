"""The whole HTTP API under schemathesis, every check, on a real ``stackyard web`` and worker (PostgreSQL,
Redis), with and without an admin password: no request gets a 5xx, and every answer is what
``/openapi.json`` says (status code, content type, body, Allow header), so generated clients can trust it.

Bounded to stay near a minute of fuzzing: 3 examples per operation; the coverage phase (boundary values,
missing parameters, undeclared methods: TRACE only) without a password; with one, the fuzzing and stateful
phases, which send the login with every request. ``make fuzz`` (bench/fuzz.py) runs everything, at length.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.fuzz import FUZZ_ENV, FuzzReport, run_fuzz, seed
from tests.support.stack import REDIS_URL, Stack, postgres_stack, redis_db

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

PASSWORD = "fuzz-admin-password"
EXAMPLES = 3
REDIS_DB = redis_db(7)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    broker = f"{REDIS_URL}/{REDIS_DB}"
    redis.Redis.from_url(broker).flushdb()
    try:
        with postgres_stack(Path(tmp_path_factory.mktemp("fuzz")), broker_url=broker, extra_env=dict(FUZZ_ENV)) as stack:
            stack.start_web()
            stack.start_worker()  # runs the fuzzer starts finish, so a request that waits for one returns
            yield stack
    finally:
        redis.Redis.from_url(broker).flushdb()  # the failed logins it counted must not lock out the next test


@pytest.fixture(scope="module")
def known(stack: Stack) -> dict[str, str]:
    return seed(stack)


@pytest.fixture(scope="module", params=[None, PASSWORD], ids=["open", "login"])
def report(request: pytest.FixtureRequest, stack: Stack, known: dict[str, str]) -> FuzzReport:
    password = request.param
    if stack.extra_env.get("STACKYARD_ADMIN_PASSWORD") != password:  # the same data, served with(out) a login
        stack.kill(stack.web, signal.SIGTERM)
        stack.extra_env.pop("STACKYARD_ADMIN_PASSWORD", None)
        if password:
            stack.extra_env["STACKYARD_ADMIN_PASSWORD"] = password
        stack.start_web()
    phases = ("fuzzing", "stateful") if password else ("coverage", "fuzzing", "stateful")
    return run_fuzz(stack, known, max_examples=EXAMPLES, password=password, seed=16, phases=phases,
                    unexpected_methods=("TRACE",), out=stack.root / f"schemathesis-{request.param_index}")


def test_no_request_gets_a_server_error(report: FuzzReport):
    assert report.operations >= 40 and report.requests > 100, report.summary()
    assert report.responses_5xx == 0 and report.server_errors == [], report.summary()


def test_every_answer_is_what_the_openapi_document_says(report: FuzzReport):
    assert report.failures == [] and report.exit_code == 0, report.summary()
