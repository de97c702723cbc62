"""A schemathesis pass over the whole OpenAPI surface of a real ``stackyard web``.

:func:`seed` stores one of everything (workflow, published app, API key, job, schedule, run) so the fuzzer's
path parameters can name them (:mod:`tests.support.fuzz_hooks`); :func:`run_fuzz` runs ``schemathesis run``
with every check against ``/openapi.json`` and reads its NDJSON report into a :class:`FuzzReport`. Used by
``tests/api/test_fuzz_integration.py`` (a few examples per operation) and ``bench/fuzz.py`` (many).

Example::

    stack = Stack(..., extra_env=FUZZ_ENV); stack.start_web(); stack.start_worker()
    report = run_fuzz(stack, seed(stack), max_examples=5, out=tmp_path)
    assert report.server_errors == [], report.summary()
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.specs import greet
from tests.support.stack import Stack

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "admin"
# Errors of the fuzzer's own Python, not of the server: CPython 3.11 (3.11.7 here) now and then miscounts the AST
# constructor's recursion depth in threaded programs (python/cpython#106905), and schemathesis runs two worker
# threads. Seen once in four runs on 2026-12-04. A run that failed on nothing else is run again, once.
INTERPRETER_BUGS = ("AST constructor recursion depth mismatch",)
# The fuzzer sends wrong credentials on purpose (and many requests at once): the failed-login throttle
# would otherwise lock the right ones out for a minute.
# Response times are checked, and GET /api/v1/nodes is fuzzed: the palette is built at start, as by default.
FUZZ_ENV = {"STACKYARD_LOGIN_FAILURES_PER_CLIENT": "1000000", "STACKYARD_LOGIN_FAILURES_TOTAL": "1000000",
            "STACKYARD_EDITOR_WARM_UP": "true"}
# Semantic checks no JSON Schema can state (is this a cron expression, a graph Haystack can connect, an input
# the workflow declares) answer 422 naming the field, so schema-valid data may get 422 too. The statuses
# otherwise match schemathesis' defaults.
ACCEPTED_VALID = ["2xx", "3xx", "401", "403", "404", "409", "422", "429"]
PHASES = ("examples", "coverage", "fuzzing", "stateful")


def seed(stack: Stack) -> dict[str, str]:
    """Store a workflow, its published app, an API key, a job, a schedule and a run; their names and ids."""

    def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = stack.api("POST", path, json=body)
        assert response.status_code in (200, 201, 202), f"{path}: {response.status_code} {response.text}"
        return response.json()

    post("/api/v1/workflows", {"name": "greet", "spec": greet()})
    post("/api/v1/publications", {"workflow": "greet", "slug": "greeter", "message": "name", "reply": "greeting",
                                  "check": False})
    key = post("/api/v1/keys", {"name": "fuzz", "rate_per_minute": 100_000})
    job = post("/api/v1/jobs", {"workflow": "greet", "source": {"type": "single", "inputs": {"name": "Ada"}}})
    post("/api/v1/schedules", {"name": "nightly", "workflow": "greet", "cron": "0 3 * * *",
                               "source": {"type": "single", "inputs": {"name": "Ada"}}})
    run = post("/api/v1/workflows/greet/runs", {"inputs": {"name": "Ada"}})
    return {"workflow": "greet", "slug": "greeter", "key": key["key"], "key_id": key["id"], "job": job["id"],
            "schedule": "nightly", "run": run["id"]}


@dataclass
class Failure:
    code: str            # schemathesis' check code, e.g. ST101 (server error)
    title: str
    operation: str
    status: int | None
    request: str         # method, URL and body, enough to replay it with curl
    response: str


@dataclass
class FuzzReport:
    exit_code: int
    operations: int = 0
    requests: int = 0
    responses_5xx: int = 0
    seconds: float = 0.0
    failures: list[Failure] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # schemathesis' own errors (no check failed: it could not test)
    output: str = ""

    @property
    def only_interpreter_bugs(self) -> bool:
        """The run failed on nothing but a known bug of the fuzzer's own Python (see ``INTERPRETER_BUGS``)."""
        return (self.exit_code != 0 and not self.failures and bool(self.errors)
                and all(any(bug in error for bug in INTERPRETER_BUGS) for error in self.errors))

    @property
    def server_errors(self) -> list[Failure]:
        return [f for f in self.failures if f.status is not None and f.status >= 500]

    def summary(self) -> str:
        counts = Counter(f"{f.code} {f.title}" for f in self.failures)
        lines = [f"{self.operations} operations, {self.requests} requests, {self.responses_5xx} answered 5xx, "
                 f"{len(self.failures)} failures in {self.seconds:.0f} s (schemathesis exit {self.exit_code})"]
        lines += [f"  {count} × {what}" for what, count in counts.most_common()]
        lines += [f"  {f.code} {f.operation}: {f.status} for {f.request}\n      → {f.response}" for f in self.failures[:20]]
        lines += [f"  schemathesis error: {error}" for error in self.errors[:5]]
        if self.exit_code not in (0, 1):  # 1: failures were found; anything else: it could not run
            lines.append(self.output[-3000:])
        return "\n".join(lines)


def run_fuzz(stack: Stack, known: dict[str, str], *, max_examples: int, out: Path, password: str | None = None,
             seed: int | None = None, phases: tuple[str, ...] = PHASES,
             unexpected_methods: tuple[str, ...] | None = None, workers: int = 2) -> FuzzReport:
    """``schemathesis run --checks all`` over ``stack``'s ``/openapi.json``, every operation.

    ``unexpected_methods``: the methods the coverage phase sends to each path that does not serve them
    (default: all of them, seven per path)."""
    out.mkdir(parents=True, exist_ok=True)
    config = out / "schemathesis.toml"
    config.write_text(_config(known, password, unexpected_methods))
    command = [sys.executable, "-m", "schemathesis.cli", "--no-color", "--config-file", str(config), "run",
               f"{stack.base_url}/openapi.json", "--checks", "all", "--max-examples", str(max_examples),
               "--phases", ",".join(phases), "--workers", str(workers), "--report", "ndjson", "--report-dir", str(out)]
    if seed is not None:
        command += ["--seed", str(seed)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "SCHEMATHESIS_HOOKS": "tests.support.fuzz_hooks",
           "STACKYARD_FUZZ_KNOWN": json.dumps(known)}
    for _ in range(2):  # a second run only when the first hit a bug of the fuzzer's own interpreter
        started = time.monotonic()
        done = subprocess.run(command, env=env, cwd=out, capture_output=True, text=True)
        report = FuzzReport(exit_code=done.returncode, seconds=time.monotonic() - started, output=done.stdout + done.stderr)
        (out / "schemathesis.log").write_text(report.output)
        reports = sorted(out.glob("*.ndjson"))
        if reports:
            _read(reports[-1], report)
        if not report.only_interpreter_bugs:
            break
    return report


def _config(known: dict[str, str], password: str | None, unexpected_methods: tuple[str, ...] | None) -> str:
    lines = ["request-timeout = 60", "", "[checks.positive_data_acceptance]",
             f"expected-statuses = {json.dumps(ACCEPTED_VALID)}", ""]
    if unexpected_methods is not None:
        lines += ["[phases.coverage]", f"unexpected-methods = {json.dumps(list(unexpected_methods))}", ""]
    if password:
        # Every request logs in. Schemathesis sends one Authorization header to all operations then, so the API
        # key operations (/v1/*, /api/v1/apps/*, which the login does not guard) only see a wrong key here; the
        # run without a password reaches past their 401.
        basic = base64.b64encode(f"{ADMIN}:{password}".encode()).decode()
        lines += ["[headers]", f'Authorization = "Basic {basic}"', ""]
    else:
        # The operations with the apiKey security scheme get the published app's key.
        lines += ["[auth.openapi.apiKey]", f"bearer = {json.dumps(known['key'])}", ""]
    return "\n".join(lines)


def _read(path: Path, report: FuzzReport) -> None:
    seen: set[tuple[str, str, str]] = set()
    for line in path.read_text().splitlines():
        event = json.loads(line)
        if "LoadingFinished" in event:
            report.operations = event["LoadingFinished"]["statistic"]["operations"]["selected"]
        if "NonFatalError" in event:
            error = event["NonFatalError"]
            report.errors.append(f"{error.get('label')}: {error['value'].get('type')}: {error['value'].get('message')}")
        scenario = event.get("ScenarioFinished")
        if not scenario:
            continue
        recorder = scenario["recorder"]
        interactions = recorder.get("interactions") or {}
        statuses = [i["response"]["status_code"] for i in interactions.values() if i.get("response")]
        report.requests += len(statuses)
        report.responses_5xx += sum(1 for status in statuses if status >= 500)
        for case_id, checks in (recorder.get("checks") or {}).items():
            for check in checks:
                if check["status"] != "failure":
                    continue
                failure = check["failure_info"]["failure"]
                response = (interactions.get(case_id) or {}).get("response") or {}
                request = (interactions.get(case_id) or {}).get("request") or {}
                key = (failure["code"], failure["operation"], (failure.get("message") or "").split("\n")[0])
                if key in seen:
                    continue
                seen.add(key)
                report.failures.append(Failure(
                    code=failure["code"], title=failure["title"], operation=failure["operation"],
                    status=response.get("status_code"),
                    request=f"{request.get('method')} {request.get('uri')} {_text(request.get('body'))[:300]}",
                    response=_text(response.get("content"))[:300]))


def _text(content: Any) -> str:
    if isinstance(content, dict) and "$base64" in content:
        return base64.b64decode(content["$base64"]).decode(errors="replace")
    return "" if content is None else str(content)
