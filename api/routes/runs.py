"""Runs: start (optionally waiting for the result), inspect, cancel, list."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Query, Response, status
from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.openapi import BODY, WRITE, errors
from api.schemas.runs import NodeRunPublic, RunCreate, RunPublic
from apps import chat
from runs import lifecycle as runs
from runs import workers
from runs.models import Run, RunState
from store.db import autocommit_scope
from worker import notify
from worker.enqueue import enqueue_new
from workflows.bounds import PositiveInt32, Text

router = APIRouter(prefix="/api/v1", tags=["runs"], route_class=LimitedRoute, responses=errors(400, 401, 429))
FINISHED = {"model": RunPublic, "description": "The run ended within `wait` seconds."}
POLL_SECONDS = 0.01


def run_public(session, run: Run, *, with_nodes: bool = True) -> RunPublic:
    public = RunPublic(**run.model_dump())
    if with_nodes:
        public.node_runs = [NodeRunPublic(**row.model_dump(exclude={"output_full"}))
                            for row in runs.node_runs(session=session, run_id=run.id)]
    if run.state == RunState.QUEUED and run.queue not in workers.live_queues(session):  # only queued runs pay this
        public.notice = (f"No worker consumes the '{run.queue}' queue right now; the run waits there until one starts "
                         f"(stackyard worker --queues {run.queue}).")
    return public


def _start(workflow_ref: str, body: RunCreate) -> str:
    with autocommit_scope() as session:  # lookups and one INSERT: no transaction needed around them
        run = runs.create_run(session=session, workflow_ref=workflow_ref, inputs=body.inputs, version=body.version)
    enqueue_new(run)  # only after the row is committed, so a fast worker always finds it
    return run.id


def snapshot(run_id: str) -> RunPublic:
    with autocommit_scope() as session:
        return run_public(session, runs.get_run(session=session, run_id=run_id))


async def wait_for(run_id: str, seconds: float) -> dict[str, Any] | None:
    """Wait up to ``seconds`` for the run to end. Returns its finish notice when one came (see
    ``worker.notify``), else None: read the run to know how it stands."""
    deadline = time.monotonic() + seconds
    if notify.can_push():
        try:
            return await notify.wait(run_id, seconds)
        except RedisError:  # the notice is a shortcut; the database still answers
            pass
    while time.monotonic() < deadline:
        if (await run_in_threadpool(runs.read_run, run_id)).state in runs.TERMINAL_STATES:
            return None
        await asyncio.sleep(POLL_SECONDS)
    return None


async def ended(run_id: str, seconds: float) -> tuple[RunState, dict[str, Any] | None, str | None]:
    """The run's end (state, outputs, error) once it came within ``seconds``; else it is cancelled and
    ``chat.ReplyTimedOut`` raised."""
    notice = await wait_for(run_id, seconds)
    if notice is not None and "outputs" in notice:  # the worker's finish notice holds all a reply needs
        return RunState(notice["state"]), notice["outputs"], notice.get("error")
    result = await run_in_threadpool(runs.read_run, run_id)
    if result.state not in runs.TERMINAL_STATES:
        raise await run_in_threadpool(chat.timed_out, result, seconds)
    return result.state, result.outputs, result.error


@router.post("/workflows/{ref}/runs", response_model=RunPublic, status_code=status.HTTP_202_ACCEPTED,
             responses={200: FINISHED, **errors(*BODY, 404, 503)})
async def start_run(ref: Text, body: RunCreate, response: Response) -> RunPublic:
    run_id = await run_in_threadpool(_start, ref, body)
    if body.wait:
        await wait_for(run_id, body.wait)
    result = await run_in_threadpool(snapshot, run_id)
    if result.state in runs.TERMINAL_STATES:
        response.status_code = status.HTTP_200_OK
    return result


@router.get("/runs/{run_id}", response_model=RunPublic, responses=errors(404, 422))
def get_run(run_id: Text, session: SessionDep) -> RunPublic:
    return run_public(session, runs.get_run(session=session, run_id=run_id))


@router.get("/runs/{run_id}/nodes/{row_id}/output", response_class=Response, responses={
    200: {"content": {"application/json": {}}, "description": "The whole result of an agent's tool call."},
    **errors(404, 422)})
def node_output(run_id: Text, row_id: PositiveInt32, session: SessionDep) -> Response:
    """The whole result of one of an agent's tool calls in the run's trace (the trace row shows a preview), as a
    JSON download; results over a million characters are cut, saying so."""
    text = runs.node_output(session=session, run_id=run_id, row_id=row_id)
    return Response(text, media_type="application/json", headers={
        "Content-Disposition": f'attachment; filename="run-{run_id}-row-{row_id}.json"'})


@router.post("/runs/{run_id}/cancel", response_model=RunPublic, responses=errors(*WRITE, 404, 409, 422))
def cancel_run(run_id: Text, session: SessionDep) -> RunPublic:
    run = runs.request_cancel(session=session, run_id=run_id)
    if run.state in runs.TERMINAL_STATES:
        notify.announce(run.id, run.state.value)
    return run_public(session, run)


@router.get("/runs", response_model=list[RunPublic], responses=errors(404, 422))
def list_runs(session: SessionDep, workflow_id: Text | None = None, state: RunState | None = None,
              limit: int = Query(default=100, ge=1, le=1000)) -> list[RunPublic]:
    return [run_public(session, run, with_nodes=False)
            for run in runs.list_runs(session=session, workflow_id=workflow_id, state=state, limit=limit)]
