"""Concurrent writes get an answer, never a 500 (issue #16.3): real parallel requests against a real
`stackyard web` (and a worker, for jobs) on a fresh PostgreSQL database.

Each test fires its requests from threads released by one barrier, so they reach the server together;
every answer must be a success or a 404/409 with a message, and the web log must show no traceback and
no 500. Races are timing-dependent: each test repeats its race a few rounds.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from psycopg.errors import DeadlockDetected
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from tests.support.specs import greet
from tests.support.stack import RedisServer, Stack, postgres_stack, wait_until

pytestmark = [pytest.mark.integration]

Request = Callable[[httpx.Client], httpx.Response]


@pytest.fixture(scope="module")
def stack(private_redis: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with postgres_stack(Path(tmp_path_factory.mktemp("concurrency")), broker_url=private_redis.url) as stack:
        stack.start_web()
        yield stack


@pytest.fixture(scope="module")
def worker(stack: Stack) -> Stack:
    stack.start_worker(concurrency=2)
    return stack


@pytest.fixture
def client(stack: Stack) -> Iterator[httpx.Client]:
    """A client for the test; afterwards the web log must hold no traceback and no 500 from it."""
    log = stack.root / "web.log"
    start = log.stat().st_size
    with httpx.Client(base_url=stack.base_url, timeout=120, limits=httpx.Limits(max_connections=100)) as http:
        yield http
    written = log.read_bytes()[start:].decode(errors="replace")
    assert "Traceback" not in written, written[-4000:]
    assert not [line for line in written.splitlines() if '" 500' in line], written[-4000:]


def at_once(client: httpx.Client, requests: list[Request]) -> list[httpx.Response]:
    """Send the requests from one thread each, released together; responses in the same order."""
    barrier = threading.Barrier(len(requests))

    def send(request: Request) -> httpx.Response:
        barrier.wait()
        try:
            return request(client)
        except httpx.TransportError as exc:  # a server that crashed mid-request: count it, keep the others
            return httpx.Response(599, json={"error": {"message": f"{type(exc).__name__}: {exc}"}})

    with ThreadPoolExecutor(max_workers=len(requests)) as pool:
        return list(pool.map(send, requests))


def answered(responses: list[httpx.Response], *allowed: int) -> list[int]:
    """The statuses, after checking each is one of ``allowed`` and every refusal says why."""
    for response in responses:
        assert response.status_code in allowed, f"{response.status_code}: {response.text}"
        if response.status_code >= 400:
            assert response.json()["error"]["message"], response.text
    return [response.status_code for response in responses]


def post(path: str, body: dict[str, Any] | None = None) -> Request:
    return lambda http: http.post(path, json=body or {})


def delete(path: str) -> Request:
    return lambda http: http.delete(path)


def create_workflow(client: httpx.Client, name: str) -> dict[str, Any]:
    response = client.post("/api/v1/workflows", json={"name": name, "spec": greet()})
    assert response.status_code == 201, response.text
    return response.json()


def publish_body(workflow: str, slug: str) -> dict[str, Any]:
    return {"workflow": workflow, "slug": slug, "message": "name", "reply": "greeting", "check": False}


def jsonl(count: int) -> dict[str, Any]:
    return {"type": "jsonl", "data": "\n".join(json.dumps({"name": f"n{i}"}) for i in range(count))}


# ── workflows and versions ─────────────────────────────────────────────────────────────────────────


def test_three_clients_saving_versions_of_one_workflow_all_succeed_numbered_without_gaps(client: httpx.Client):
    create_workflow(client, "saves")
    save = post("/api/v1/workflows/saves/versions", {"spec": greet()})

    def thirty_saves(http: httpx.Client) -> list[httpx.Response]:
        return [save(http) for _ in range(30)]

    batches = at_once(client, [thirty_saves] * 3)
    responses = [response for batch in batches for response in batch]
    assert answered(responses, 201) == [201] * 90
    numbers = sorted(response.json()["number"] for response in responses)
    assert numbers == list(range(2, 92))                      # unique and gapless after version 1
    burst = at_once(client, [save] * 30)                      # and 30 at the very same moment
    assert answered(burst, 201) == [201] * 30
    listed = client.get("/api/v1/workflows/saves/versions").json()
    assert [version["number"] for version in listed] == list(range(1, 122))


def test_renames_to_one_name_at_once_give_one_200_and_409s_naming_the_clash(client: httpx.Client):
    for round_ in range(6):
        ids = [create_workflow(client, f"rename-{round_}-{i}")["id"] for i in range(6)]
        target = f"renamed-{round_}"
        responses = at_once(client, [lambda http, ref=ref: http.patch(f"/api/v1/workflows/{ref}", json={"name": target})
                                     for ref in ids])
        assert sorted(answered(responses, 200, 409)) == [200] + [409] * 5
        assert all(target in r.json()["error"]["message"] for r in responses if r.status_code == 409)
        assert client.get(f"/api/v1/workflows/{target}").status_code == 200


def test_a_rename_racing_a_delete_answers_404_never_500(client: httpx.Client):
    for round_ in range(15):
        ref = create_workflow(client, f"doomed-{round_}")["id"]
        renames = [lambda http, i=i: http.patch(f"/api/v1/workflows/{ref}", json={"name": f"doomed-{round_}-{i}"})
                   for i in range(3)]
        responses = at_once(client, [delete(f"/api/v1/workflows/{ref}"), *renames])
        assert answered(responses[:1], 204, 404) == [204]
        answered(responses[1:], 200, 404)
        assert client.get(f"/api/v1/workflows/{ref}").status_code == 404


def test_two_deletes_of_one_workflow_give_one_204_and_one_404(client: httpx.Client):
    for round_ in range(5):
        ref = create_workflow(client, f"twice-{round_}")["id"]
        responses = at_once(client, [delete(f"/api/v1/workflows/{ref}")] * 2)
        assert sorted(answered(responses, 204, 404)) == [204, 404]


def test_imports_of_one_new_name_at_once_each_become_a_version(client: httpx.Client):
    import yaml

    document = yaml.safe_dump(greet())
    for round_ in range(3):
        name = f"imported-{round_}"
        responses = at_once(client, [lambda http: http.post("/api/v1/workflows/import", params={"name": name},
                                                            content=document,
                                                            headers={"content-type": "application/yaml"})] * 5)
        assert answered(responses, 201) == [201] * 5
        assert sorted(response.json()["number"] for response in responses) == [1, 2, 3, 4, 5]


# ── publishing and keys ────────────────────────────────────────────────────────────────────────────


def test_publishing_one_slug_at_once_and_unpublishing_it_meanwhile_never_500(client: httpx.Client):
    create_workflow(client, "published")
    for round_ in range(6):
        slug = f"app-{round_}"
        first = at_once(client, [post("/api/v1/publications", publish_body("published", slug))] * 6)
        assert answered(first, 201) == [201] * 6                 # republishing is an upsert: all land
        mixed = at_once(client, [post("/api/v1/publications", publish_body("published", slug)),
                                 delete(f"/api/v1/publications/{slug}")] * 3)
        answered(mixed, 201, 204, 404)
        gone = at_once(client, [delete(f"/api/v1/publications/{slug}")] * 3)
        assert answered(gone, 204, 404).count(204) <= 1


def test_publishing_while_the_workflow_is_deleted_answers_201_or_404(client: httpx.Client):
    for round_ in range(8):
        ref = create_workflow(client, f"pub-doomed-{round_}")["id"]
        responses = at_once(client, [delete(f"/api/v1/workflows/{ref}"),
                                     *[post("/api/v1/publications", publish_body(ref, f"doomed-{round_}-{i}"))
                                       for i in range(3)]])
        answered(responses[:1], 204)
        answered(responses[1:], 201, 404)


def test_keys_created_and_revoked_at_once_never_500(client: httpx.Client):
    create_workflow(client, "keyed")
    assert client.post("/api/v1/publications", json=publish_body("keyed", "keyed-app")).status_code == 201
    created = at_once(client, [post("/api/v1/keys", {"app": "keyed-app"})] * 10)
    assert answered(created, 201) == [201] * 10
    key_id = created[0].json()["id"]
    revoked = at_once(client, [delete(f"/api/v1/keys/{key_id}")] * 5)
    assert answered(revoked, 200) == [200] * 5
    assert len({response.json()["revoked_at"] for response in revoked}) == 1   # revoked once, at one time
    racing = at_once(client, [delete("/api/v1/publications/keyed-app"), *[post("/api/v1/keys", {"app": "keyed-app"})] * 4])
    answered(racing, 201, 204, 404)


# ── schedules and jobs ─────────────────────────────────────────────────────────────────────────────


def schedule_body(name: str, workflow: str) -> dict[str, Any]:
    return {"name": name, "workflow": workflow, "cron": "0 9 * * *", "source": jsonl(2)}


def test_schedules_created_at_once_under_one_name_give_one_201_and_409s(client: httpx.Client):
    create_workflow(client, "scheduled")
    for round_ in range(4):
        responses = at_once(client, [post("/api/v1/schedules", schedule_body(f"nightly-{round_}", "scheduled"))] * 5)
        assert sorted(answered(responses, 201, 409)) == [201] + [409] * 4
        name = f"nightly-{round_}"
        actions = at_once(client, [post(f"/api/v1/schedules/{name}/pause"), post(f"/api/v1/schedules/{name}/pause"),
                                   delete(f"/api/v1/schedules/{name}"), delete(f"/api/v1/schedules/{name}")])
        answered(actions, 200, 204, 404, 409)
        assert sorted(answered(actions[2:], 204, 404)) == [204, 404]


def test_a_schedule_paused_and_resumed_at_once_ends_in_one_state_never_500(client: httpx.Client):
    create_workflow(client, "toggled")
    assert client.post("/api/v1/schedules", json=schedule_body("toggle", "toggled")).status_code == 201
    for _ in range(4):
        answered(at_once(client, [post("/api/v1/schedules/toggle/pause"), post("/api/v1/schedules/toggle/resume")] * 3),
                 200, 409)
        assert client.get("/api/v1/schedules/toggle").json()["state"] in ("active", "paused")


def test_a_job_retried_and_cancelled_at_once_never_500(client: httpx.Client):
    ref = create_workflow(client, "retried")["id"]
    for _ in range(3):
        job_id = client.post("/api/v1/jobs", json={"workflow": ref, "source": jsonl(6)}).json()["id"]
        assert client.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200
        answered(at_once(client, [post(f"/api/v1/jobs/{job_id}/retry")] * 3 + [post(f"/api/v1/jobs/{job_id}/cancel")]),
                 200, 409)
        assert len(client.get(f"/api/v1/jobs/{job_id}/items").json()) == 6   # retried, not doubled


def test_a_schedule_or_job_created_while_its_workflow_is_deleted_answers_201_or_404(client: httpx.Client):
    for round_ in range(8):
        ref = create_workflow(client, f"sched-doomed-{round_}")["id"]
        responses = at_once(client, [delete(f"/api/v1/workflows/{ref}"),
                                     post("/api/v1/schedules", schedule_body(f"orphan-{round_}", ref)),
                                     post("/api/v1/jobs", {"workflow": ref, "source": jsonl(3)}),
                                     post("/api/v1/jobs", {"workflow": ref, "source": jsonl(3)})])
        answered(responses[:1], 204)
        answered(responses[1:], 201, 404)   # not a 409 claiming the schedule's name is taken: the workflow is gone


def test_runs_started_while_their_workflow_is_deleted_answer_202_or_404(client: httpx.Client):
    for round_ in range(8):
        ref = create_workflow(client, f"run-doomed-{round_}")["id"]
        first = client.post(f"/api/v1/workflows/{ref}/runs", json={"inputs": {"name": "first"}})
        assert first.status_code == 202, first.text   # the version is now in the web process's cache
        responses = at_once(client, [delete(f"/api/v1/workflows/{ref}"),
                                     *[post(f"/api/v1/workflows/{ref}/runs", {"inputs": {"name": f"n{i}"}})
                                       for i in range(3)]])
        answered(responses[:1], 204)
        answered(responses[1:], 202, 404)


def test_a_delete_or_cancel_that_deadlocks_is_retried_instead_of_a_500(stack: Stack, client: httpx.Client):
    """Deleting a workflow locks its jobs, then their items (the foreign-key cascade); cancelling locks the
    job, then its items. A transaction that holds an item and then asks for its job closes a cycle, and
    PostgreSQL aborts the transaction whose deadlock check runs first: the web's, when the locker asks
    within ``deadlock_timeout`` (1 s) of the web starting to wait. On a loaded machine the locker can be
    late, and then it is the one aborted; such a round proves nothing and is played again."""
    engine = create_engine(stack.database_url, poolclass=NullPool)
    try:
        for action in ("cancel", "delete"):
            for round_ in range(5):
                ref = create_workflow(client, f"deadlock-{action}-{round_}")["id"]
                created = client.post("/api/v1/jobs", json={"workflow": ref, "source": jsonl(20)})
                assert created.status_code == 201, created.text
                job_id = created.json()["id"]
                request = post(f"/api/v1/jobs/{job_id}/cancel") if action == "cancel" else delete(f"/api/v1/workflows/{ref}")
                before = _deadlocks(engine)
                response, web_was_the_victim = _against_a_reverse_locker(engine, client, job_id, request)
                assert response.status_code == (200 if action == "cancel" else 204), response.text
                if web_was_the_victim:
                    assert _deadlocks(engine) > before               # the cycle really happened
                    break
            else:
                raise AssertionError(f"{action}: the web was never the deadlock's victim in 5 rounds")
    finally:
        engine.dispose()


def _against_a_reverse_locker(engine: Engine, client: httpx.Client, job_id: str,
                              request: Request) -> tuple[httpx.Response, bool]:
    """Send ``request`` while another transaction locks the job's last item, then (once the request waits
    for that item) the job itself. Returns the response and whether the web, not the locker, was aborted."""
    with engine.connect() as locker, engine.connect() as observer, ThreadPoolExecutor(max_workers=1) as pool:
        pid = locker.execute(text("SELECT pg_backend_pid()")).scalar_one()
        locker.execute(text("UPDATE job_item SET error = error WHERE job_id = :job AND item_index = 19"), {"job": job_id})
        pending = pool.submit(request, client)
        wait_until(lambda: observer.execute(text("SELECT count(*) FROM pg_stat_activity "
                                                 "WHERE :pid = ANY(pg_blocking_pids(pid))"), {"pid": pid}).scalar_one(),
                   timeout=30, interval=0.01, message="the request to wait for the locked item")
        try:
            locker.execute(text("SELECT id FROM job WHERE id = :job FOR UPDATE"), {"job": job_id})
        except OperationalError as error:
            if not isinstance(error.orig, DeadlockDetected):
                raise
            locker.rollback()
            return pending.result(timeout=60), False
        locker.commit()
        return pending.result(timeout=60), True


def _deadlocks(engine: Engine) -> int:
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_stat_clear_snapshot()"))
        return conn.execute(text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")).scalar_one()


def test_deleting_a_workflow_or_cancelling_a_job_while_a_worker_finishes_its_items_never_500(worker: Stack,
                                                                                               client: httpx.Client):
    for round_ in range(3):
        ref = create_workflow(client, f"busy-{round_}")["id"]
        jobs = [client.post("/api/v1/jobs", json={"workflow": ref, "source": jsonl(200), "concurrency": 4}).json()
                for _ in range(2)]
        wait_until(lambda: client.get(f"/api/v1/jobs/{jobs[0]['id']}").json()["done"] >= 10, timeout=120,
                   message="items finishing")
        responses = at_once(client, [post(f"/api/v1/jobs/{jobs[1]['id']}/cancel"), delete(f"/api/v1/workflows/{ref}")])
        answered(responses[:1], 200, 404, 409)
        answered(responses[1:], 204)


def test_runs_cancelled_while_a_worker_finishes_them_never_500(worker: Stack, client: httpx.Client):
    ref = create_workflow(client, "quick")["id"]
    for round_ in range(3):
        runs = [client.post(f"/api/v1/workflows/{ref}/runs", json={"inputs": {"name": f"r{round_}-{i}"}}).json()["id"]
                for i in range(12)]
        answered(at_once(client, [post(f"/api/v1/runs/{run_id}/cancel") for run_id in runs]), 200, 409)
        for run_id in runs:
            done = wait_until(lambda: (run := client.get(f"/api/v1/runs/{run_id}").json())["finished"] and run,
                              timeout=60, message=f"run {run_id} to end")
            assert done["state"] in ("cancelled", "succeeded"), done
