"""Batch jobs and schedules: create (JSON, or a CSV/JSONL upload), list, get, cancel, retry failed items,
page through items, download results as CSV or JSONL; schedules with a preview of their next fires,
pause/resume and the history of their fires."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any, Literal

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.errors import RequestTooLarge
from api.openapi import BINARY, BODY, TEXT, WRITE, errors, request_body, schema_of
from api.schemas.jobs import (
    FirePublic,
    JobCreate,
    JobItemPublic,
    JobPublic,
    ScheduleCreate,
    SchedulePublic,
)
from jobs import lifecycle as jobs
from jobs import schedules
from jobs.models import ItemState, Job, JobState, Schedule, ScheduleState
from jobs.sources import BadJobSource
from runs import workers
from stackyard import json_limits
from stackyard.settings import get_settings
from store.db import session_scope
from worker import batch
from workflows import crud
from workflows.bounds import INT32_MAX, NO_NUL, Text

router = APIRouter(prefix="/api/v1", tags=["jobs"], route_class=LimitedRoute, responses=errors(400, 401, 429))
PAGE = 500


def job_public(session, job: Job, progress: jobs.Progress | None = None) -> JobPublic:
    progress = progress or jobs.progress(session=session, jobs=[job])[job.id]
    counts = progress.counts
    public = JobPublic(**job.model_dump(), done=counts["succeeded"], failed=counts["failed"], cancelled=counts["cancelled"],
                       running=counts["running"], queued=counts["queued"], pending=counts["pending"],
                       documents_written=progress.documents_written, eta_seconds=progress.eta_seconds)
    if job.state in (JobState.QUEUED, JobState.RUNNING) and job.queue not in workers.live_queues(session):
        public.notice = (f"No worker consumes the '{job.queue}' queue right now; the items wait there until one starts "
                         f"(stackyard worker --queues {job.queue}).")
    return public


def _create(body: JobCreate) -> str:
    with session_scope() as session:
        job = jobs.create_job(session=session, workflow_ref=body.workflow, version=body.version, source=body.source,
                              mapping=body.mapping, fixed=body.fixed, concurrency=body.concurrency,
                              rate_per_minute=body.rate_per_minute, name=body.name)
    batch.dispatch(job.id)  # after commit; if the broker is down the pump starts it later
    return job.id


async def _job_request(request: Request) -> JobCreate:
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        return JobCreate.model_validate(await request.json() if await request.body() else {})
    limit = get_settings().job_upload_max_bytes
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit + 65536:
        raise RequestTooLarge(f"Request body is {length} bytes; the limit is {limit} (STACKYARD_JOB_UPLOAD_MAX_BYTES).")
    form = await request.form()
    upload = form.get("file")
    if upload is None or isinstance(upload, str):
        raise BadJobSource("A multipart job needs a 'file' part (the CSV or JSONL) and a 'job' part (JSON).", field="file")
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise RequestTooLarge(f"The uploaded file is over {limit} bytes (STACKYARD_JOB_UPLOAD_MAX_BYTES).")
    kind = form.get("type") or ("jsonl" if (upload.filename or "").lower().endswith((".jsonl", ".ndjson")) else "csv")
    try:
        definition = json_limits.loads(str(form.get("job") or "{}"))
    except json_limits.JsonTooDeep:
        raise BadJobSource(f"The 'job' part nests objects and arrays more than {json_limits.MAX_JSON_DEPTH} levels "
                           f"deep; the limit is {json_limits.MAX_JSON_DEPTH}. Send a flatter object such as "
                           '{"workflow": "rag"}.', field="job") from None
    except json.JSONDecodeError as exc:
        raise BadJobSource(f"The 'job' part is not valid JSON ({exc.msg} at column {exc.colno}).", field="job") from None
    if not isinstance(definition, dict):
        raise BadJobSource('The \'job\' part must be a JSON object such as {"workflow": "rag"}.', field="job")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadJobSource("The uploaded file is not UTF-8 text; save it as UTF-8 CSV or JSONL.", field="file") from None
    return JobCreate.model_validate({**definition, "source": {"type": kind, "data": text}})


_UPLOAD = {"type": "object", "required": ["file", "job"], "properties": {
    "file": {**BINARY, "description": "The items: CSV with a header row, or JSONL"},
    "job": {**TEXT, "description": 'JSON: the JobCreate fields but source, e.g. {"workflow": "rag", "concurrency": 4}'},
    "type": {"enum": ["csv", "jsonl"], "description": "Default: jsonl for a .jsonl/.ndjson file name, else csv"}}}


@router.post("/jobs", response_model=JobPublic, status_code=status.HTTP_201_CREATED, responses=errors(
                 *BODY, 404, why={413: "The body is over STACKYARD_MAX_BODY_BYTES, or an upload over "
                                       "STACKYARD_JOB_UPLOAD_MAX_BYTES."}),
             openapi_extra=request_body({"application/json": schema_of(JobCreate), "multipart/form-data": _UPLOAD}))
async def create_job(request: Request) -> JobPublic:
    """JSON body (``JobCreate``), or multipart with ``file`` (CSV/JSONL), ``job`` (JSON, without source)
    and optional ``type`` (csv|jsonl, default from the file name)."""
    body = await _job_request(request)
    job_id = await run_in_threadpool(_create, body)
    return await run_in_threadpool(_job_snapshot, job_id)


def _job_snapshot(job_id: str) -> JobPublic:
    with session_scope() as session:
        return job_public(session, jobs.get_job(session=session, job_id=job_id))


@router.get("/jobs", response_model=list[JobPublic], responses=errors(404, 422))
def list_jobs(session: SessionDep, workflow_id: Text | None = None, state: JobState | None = None,
              schedule_id: Text | None = None, limit: int = Query(default=50, ge=1, le=500)) -> list[JobPublic]:
    rows = jobs.list_jobs(session=session, workflow_id=workflow_id, state=state, schedule_id=schedule_id, limit=limit)
    progress = jobs.progress(session=session, jobs=rows)
    return [job_public(session, job, progress[job.id]) for job in rows]


@router.get("/jobs/{job_id}", response_model=JobPublic, responses=errors(404, 422))
def get_job(job_id: Text, session: SessionDep) -> JobPublic:
    return job_public(session, jobs.get_job(session=session, job_id=job_id))


@router.post("/jobs/{job_id}/cancel", response_model=JobPublic, responses=errors(*WRITE, 404, 409, 422))
def cancel_job(job_id: Text, session: SessionDep) -> JobPublic:
    return job_public(session, jobs.request_cancel(session=session, job_id=job_id))


@router.post("/jobs/{job_id}/retry", response_model=JobPublic, responses=errors(*WRITE, 404, 409, 422))
def retry_failed(job_id: Text, session: SessionDep) -> JobPublic:
    """Rerun only the failed items of a finished job."""
    jobs.retry_failed(session=session, job_id=job_id)
    batch.dispatch(job_id)
    return job_public(session, jobs.get_job(session=session, job_id=job_id))


def item_public(item) -> JobItemPublic:
    return JobItemPublic(index=item.item_index, **item.model_dump(exclude={"item_index"}))


@router.get("/jobs/{job_id}/items", response_model=list[JobItemPublic], responses=errors(404, 422))
def list_items(job_id: Text, session: SessionDep, state: ItemState | None = None,
               after: int = Query(default=-1, ge=-1, le=INT32_MAX, description="Last index seen (paging)"),
               limit: int = Query(default=100, ge=1, le=1000)) -> list[JobItemPublic]:
    jobs.get_job(session=session, job_id=job_id)
    return [item_public(i) for i in jobs.list_items(session=session, job_id=job_id, state=state, after=after, limit=limit)]


def _pages(job_id: str) -> Iterator[list[JobItemPublic]]:
    after = -1
    while True:
        with session_scope() as session:
            page = [item_public(i) for i in jobs.list_items(session=session, job_id=job_id, after=after, limit=PAGE)]
        if not page:
            return
        yield page
        after = page[-1].index


def _cell(value: Any) -> str:
    return "" if value is None else value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def _csv_rows(job_id: str, inputs: list[str], outputs: list[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["index", "state", *inputs, *outputs, "error", "documents_written", "attempts", "duration_ms"])
    for page in _pages(job_id):
        for item in page:
            writer.writerow([item.index, item.state.value, *(_cell(item.inputs.get(name)) for name in inputs),
                             *(_cell((item.outputs or {}).get(name)) for name in outputs), item.error or "",
                             _cell(item.documents_written), item.attempts, _cell(item.duration_ms)])
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def _jsonl_rows(job_id: str) -> Iterator[str]:
    for page in _pages(job_id):
        yield "".join(json.dumps(item.model_dump(mode="json", exclude={"worker", "dispatches"}), ensure_ascii=False) + "\n"
                      for item in page)


@router.get("/jobs/{job_id}/results", response_class=StreamingResponse, responses={
    200: {"description": "One row per item",
          "content": {"text/csv": {"schema": TEXT}, "application/x-ndjson": {"schema": TEXT}}},
    **errors(404, 422)})
def download_results(job_id: Text, session: SessionDep, format: Literal["csv", "jsonl"] = "csv") -> StreamingResponse:
    """One row per item, in item order: inputs, outputs, state, error, duration."""
    job = jobs.get_job(session=session, job_id=job_id)
    spec = crud.version_spec(crud.get_version_by_id(session=session, version_id=job.version_id))
    filename = f"job-{job.id}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "jsonl":
        return StreamingResponse(_jsonl_rows(job.id), media_type="application/x-ndjson", headers=headers)
    return StreamingResponse(_csv_rows(job.id, list(spec.inputs), list(spec.outputs)), media_type="text/csv",
                             headers=headers)


# ── schedules ───────────────────────────────────────────────────────────────────────────────────────


def schedule_public(schedule: Schedule, count: int = 5) -> SchedulePublic:
    public = SchedulePublic(**schedule.model_dump(), source_type=schedule.source.get("type", "?"))
    if schedule.state == ScheduleState.ACTIVE:
        public.next_fires = schedules.next_fires(schedule.cron, schedule.timezone, count=count)
    return public


@router.get("/schedules/preview", response_model=list[datetime], tags=["schedules"], responses=errors(422))
def preview(cron: str = Query(min_length=1, max_length=200, pattern=NO_NUL, description="5 fields, or 6 with seconds last"),
            timezone: str = Query(default="UTC", max_length=64, pattern=NO_NUL),
            count: int = Query(default=5, ge=1, le=100)) -> list[datetime]:
    """The next ``count`` fire times of a cron expression in a timezone (nothing is stored)."""
    return schedules.next_fires(cron, timezone, count=count)


@router.post("/schedules", response_model=SchedulePublic, status_code=status.HTTP_201_CREATED, tags=["schedules"],
             responses=errors(*BODY, 404, 409))
def create_schedule(body: ScheduleCreate, session: SessionDep) -> SchedulePublic:
    schedule = schedules.create_schedule(session=session, name=body.name, workflow_ref=body.workflow, cron=body.cron,
                                         timezone_name=body.timezone, source=body.source.model_dump(),
                                         version=body.version, mapping=body.mapping, fixed=body.fixed,
                                         concurrency=body.concurrency, rate_per_minute=body.rate_per_minute)
    return schedule_public(schedule)


@router.get("/schedules", response_model=list[SchedulePublic], tags=["schedules"])
def list_schedules(session: SessionDep) -> list[SchedulePublic]:
    return [schedule_public(s, count=1) for s in schedules.list_schedules(session=session)]


@router.get("/schedules/{ref}", response_model=SchedulePublic, tags=["schedules"], responses=errors(404, 422))
def get_schedule(ref: Text, session: SessionDep) -> SchedulePublic:
    return schedule_public(schedules.get_schedule(session=session, ref=ref))


@router.post("/schedules/{ref}/pause", response_model=SchedulePublic, tags=["schedules"],
             responses=errors(*WRITE, 404, 409, 422))
def pause_schedule(ref: Text, session: SessionDep) -> SchedulePublic:
    return schedule_public(schedules.pause(session=session, ref=ref))


@router.post("/schedules/{ref}/resume", response_model=SchedulePublic, tags=["schedules"],
             responses=errors(*WRITE, 404, 409, 422))
def resume_schedule(ref: Text, session: SessionDep) -> SchedulePublic:
    return schedule_public(schedules.resume(session=session, ref=ref))


@router.delete("/schedules/{ref}", status_code=status.HTTP_204_NO_CONTENT, tags=["schedules"],
               responses=errors(*WRITE, 404, 409, 422))
def delete_schedule(ref: Text, session: SessionDep) -> Response:
    schedules.delete_schedule(session=session, ref=ref)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/schedules/{ref}/fires", response_model=list[FirePublic], tags=["schedules"], responses=errors(404, 422))
def list_fires(ref: Text, session: SessionDep, limit: int = Query(default=100, ge=1, le=1000)) -> list[FirePublic]:
    """Newest first: each tick handled, and the job it started."""
    schedule = schedules.get_schedule(session=session, ref=ref)
    return [FirePublic(**fire.model_dump(), job_state=job.state if job else None)
            for fire, job in schedules.list_fires(session=session, schedule_id=schedule.id, limit=limit)]
