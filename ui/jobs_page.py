"""Batch jobs and schedules in the browser: ``/jobs``.

Create a job from a workflow (upload a CSV/JSONL, name files/folders/globs under the files root, or give
one fixed input), watch its progress bar, open the per-item results table, download CSV/JSONL, cancel,
retry failed items. Turn the same definition into a schedule (cron + timezone, with a preview of the
next fires), pause/resume it and read its history of fires. Handlers are plain functions (tested
without a browser); mount with ``mount_jobs(app)`` before the editor at ``/``.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI

from jobs import lifecycle as jobs
from jobs import schedules
from jobs.models import MAX_CONCURRENCY, MAX_RATE_PER_MINUTE, ItemState, ScheduleState
from stackyard.errors import StackyardError
from stackyard.json_limits import MAX_JSON_DEPTH, JsonTooDeep, loads
from stackyard.settings import get_settings
from store.db import session_scope
from ui import fields
from ui.pages import mount_page
from worker import batch
from workflows import crud
from workflows.bounds import INT32_MAX

PATH = "/jobs"
JOB_HEADERS = ["id", "name", "workflow", "state", "done", "failed", "total", "ETA (s)", "docs written", "created"]
ITEM_HEADERS = ["index", "state", "inputs", "outputs", "error", "attempts", "duration ms"]
SCHEDULE_HEADERS = ["name", "workflow", "cron", "timezone", "state", "next fire"]
FIRE_HEADERS = ["tick", "state", "job", "job state", "missed", "scheduler", "error"]
SOURCES = ("upload CSV/JSONL", "files", "single input")
ITEM_ROWS = 200
TEXT_CELL = 200


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= TEXT_CELL else text[:TEXT_CELL] + "…"


def _json(text: str | None, what: str) -> dict[str, Any]:
    if not (text or "").strip():
        return {}
    try:
        value = loads(text)
    except JsonTooDeep:
        raise StackyardError(f"{what} nests objects and arrays more than {MAX_JSON_DEPTH} levels deep; the limit is "
                             f"{MAX_JSON_DEPTH}.") from None
    except json.JSONDecodeError as exc:
        raise StackyardError(f"{what} is not valid JSON ({exc.msg}); write an object such as "
                             '{"question": "q"}.') from None
    if not isinstance(value, dict):
        raise StackyardError(f"{what} must be a JSON object.")
    return value


def definition(kind: str, upload: str | None, paths: str, inputs: str, mapping: str, fixed: str) -> dict[str, Any]:
    """The job definition the form describes: source, mapping and fixed inputs."""
    if kind == SOURCES[0]:
        if not upload:
            raise StackyardError("Upload a CSV or JSONL file first.")
        file = Path(upload)
        source = {"type": "jsonl" if file.suffix.lower() in (".jsonl", ".ndjson") else "csv",
                  "data": file.read_text(encoding="utf-8")}
    elif kind == SOURCES[1]:
        entries = [p.strip() for p in (paths or "").replace(",", "\n").splitlines() if p.strip()]
        source = {"type": "files", "paths": entries}
    else:
        source = {"type": "single", "inputs": _json(inputs, "Inputs")}
    return {"source": source, "mapping": _json(mapping, "Mapping"), "fixed": _json(fixed, "Fixed inputs")}


def _limits(concurrency: float | None, rate: float | None) -> dict[str, Any]:
    return {"concurrency": fields.whole_number(concurrency, field="Concurrency", high=MAX_CONCURRENCY),
            "rate_per_minute": fields.rate(rate, field="Rate limit", high=MAX_RATE_PER_MINUTE)}


def _version(value: float | None) -> int | None:
    return None if value == 0 else fields.whole_number(value, field="Version", high=INT32_MAX, hint="; 0 is the newest")


def workflow_names() -> list[str]:
    with session_scope() as session:
        return [w.name for w in crud.list_workflows(session=session)]


def jobs_table(limit: int = 50) -> list[list]:
    with session_scope() as session:
        rows = jobs.list_jobs(session=session, limit=limit)
        progress = jobs.progress(session=session, jobs=rows)
        names = {w.id: w.name for w in crud.list_workflows(session=session)}
        return [[j.id, j.name, names.get(j.workflow_id, j.workflow_id), j.state.value, progress[j.id].done,
                 progress[j.id].failed, j.total, progress[j.id].eta_seconds or "", progress[j.id].documents_written or "",
                 j.created_at.strftime("%Y-%m-%d %H:%M:%S")] for j in rows]


def create_job(workflow: str, version: float | None, name: str, kind: str, upload: str | None, paths: str, inputs: str,
               mapping: str, fixed: str, concurrency: float | None, rate: float | None) -> tuple[str, list[list], str]:
    try:
        with session_scope() as session:
            job = jobs.create_job(session=session, workflow_ref=workflow or "", version=_version(version),
                                  name=name or "", **definition(kind, upload, paths, inputs, mapping, fixed),
                                  **_limits(concurrency, rate))
        batch.dispatch(job.id)
        return f"✅ Job {job.id} created with {job.total} items.", jobs_table(), job.id
    except (StackyardError, OSError, UnicodeDecodeError) as exc:
        return f"⚠️ {exc}", jobs_table(), ""


def progress_html(job_id: str) -> str:
    if not job_id:
        return "<p>Pick a job in the table.</p>"
    try:
        with session_scope() as session:
            job = jobs.get_job(session=session, job_id=job_id.strip())
            p = jobs.progress(session=session, jobs=[job])[job.id]
    except StackyardError as exc:
        return f"<p>⚠️ {html.escape(str(exc))}</p>"
    done, failed = 100 * p.done / max(p.total, 1), 100 * p.failed / max(p.total, 1)
    eta = f" · ETA {p.eta_seconds:.0f} s" if p.eta_seconds is not None else ""
    docs = f" · {p.documents_written} documents written" if p.documents_written is not None else ""
    return (f'<div id="job-progress" data-state="{job.state.value}" data-done="{p.done}" data-total="{p.total}">'
            f'<div style="display:flex;height:18px;border-radius:4px;overflow:hidden;background:#e5e7eb">'
            f'<div style="width:{done:.2f}%;background:#16a34a"></div>'
            f'<div style="width:{failed:.2f}%;background:#dc2626"></div>'
            f"</div><p><b>{job.state.value}</b> · {p.done} done · {p.failed} failed · {p.counts['running']} running · "
            f"{p.total} total{eta}{docs}</p>{html.escape(job.error or '')}</div>")


def items_table(job_id: str, state: str | None = None) -> list[list]:
    if not job_id:
        return []
    with session_scope() as session:
        items = jobs.list_items(session=session, job_id=job_id.strip(), limit=ITEM_ROWS,
                                state=ItemState(state) if state and state != "all" else None)
        return [[i.item_index, i.state.value, _short(i.inputs), _short(i.outputs) if i.outputs is not None else "",
                 i.error or "", i.attempts, i.duration_ms or ""] for i in items]


def downloads(job_id: str) -> str:
    if not job_id:
        return ""
    base = f"/api/v1/jobs/{job_id.strip()}/results"
    return f"Download results: [CSV]({base}?format=csv) · [JSONL]({base}?format=jsonl)"


def cancel_job(job_id: str) -> str:
    try:
        with session_scope() as session:
            job = jobs.request_cancel(session=session, job_id=(job_id or "").strip())
        return f"✅ Job {job.id} cancelled; running items finish, no new item starts."
    except StackyardError as exc:
        return f"⚠️ {exc}"


def retry_job(job_id: str) -> str:
    try:
        with session_scope() as session:
            job, count = jobs.retry_failed(session=session, job_id=(job_id or "").strip())
        batch.dispatch(job.id)
        return f"✅ Retrying {count} failed item(s) of job {job.id}."
    except StackyardError as exc:
        return f"⚠️ {exc}"


def preview(cron: str, timezone: str) -> str:
    try:
        fires = schedules.next_fires(cron or "", timezone or "UTC", count=5)
    except StackyardError as exc:
        return f"⚠️ {exc}"
    return "Next fires: " + ", ".join(f.strftime("%Y-%m-%d %H:%M:%S %Z") for f in fires)


def schedules_table() -> list[list]:
    with session_scope() as session:
        names = {w.id: w.name for w in crud.list_workflows(session=session)}
        return [[s.name, names.get(s.workflow_id, s.workflow_id), s.cron, s.timezone, s.state.value,
                 _next_fire(s)] for s in schedules.list_schedules(session=session)]


def _next_fire(schedule: Any) -> str:
    # A paused schedule has no next fire: resuming computes a fresh one from the time it resumes.
    if schedule.state != ScheduleState.ACTIVE:
        return f"— ({schedule.state.value})"
    return schedule.next_fire_at.strftime("%Y-%m-%d %H:%M:%S UTC")


def create_schedule(sched_name: str, cron: str, timezone: str, workflow: str, version: float | None, kind: str,
                    upload: str | None, paths: str, inputs: str, mapping: str, fixed: str, concurrency: float | None,
                    rate: float | None) -> tuple[str, list[list]]:
    try:
        with session_scope() as session:
            schedule = schedules.create_schedule(session=session, name=(sched_name or "").strip(),
                                                 workflow_ref=workflow or "", cron=cron or "", timezone_name=timezone or "UTC",
                                                 version=_version(version),
                                                 **definition(kind, upload, paths, inputs, mapping, fixed),
                                                 **_limits(concurrency, rate))
        return f"✅ Schedule '{schedule.name}' created. {preview(schedule.cron, schedule.timezone)}", schedules_table()
    except (StackyardError, OSError, UnicodeDecodeError) as exc:
        return f"⚠️ {exc}", schedules_table()


def set_paused(sched_name: str, paused: bool) -> tuple[str, list[list]]:
    try:
        with session_scope() as session:
            action = schedules.pause if paused else schedules.resume
            schedule = action(session=session, ref=(sched_name or "").strip())
        return f"✅ '{schedule.name}' {schedule.state.value}", schedules_table()
    except StackyardError as exc:
        return f"⚠️ {exc}", schedules_table()


def fires_table(sched_name: str) -> list[list]:
    if not (sched_name or "").strip():
        return []
    try:
        with session_scope() as session:
            schedule = schedules.get_schedule(session=session, ref=sched_name.strip())
            return [[f.fire_time.strftime("%Y-%m-%d %H:%M:%S UTC"), f.state.value, f.job_id or "",
                     job.state.value if job else "", f.missed or "", f.scheduler, f.error or ""]
                    for f, job in schedules.list_fires(session=session, schedule_id=schedule.id)]
    except StackyardError:
        return []


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard jobs") as page:
        gr.Markdown("## Batch jobs\nRun a workflow over many items: one per CSV row or JSONL line, one per file under "
                    "the files root, or a single fixed input. Mapping: `{\"input\": \"column\"}` (files: `\"path\"`).")
        with gr.Row():
            workflow = gr.Dropdown(label="Workflow", choices=[], allow_custom_value=True, elem_id="job-workflow")
            version = gr.Number(label="Version (0 = newest)", value=0, precision=0)
            name = gr.Textbox(label="Job name (optional)")
        with gr.Row():
            kind = gr.Radio(list(SOURCES), value=SOURCES[0], label="Items from", elem_id="job-source")
            upload = gr.File(label="CSV / JSONL", file_types=[".csv", ".jsonl", ".ndjson"], type="filepath")
            paths = gr.Textbox(label="Files, folders or globs (one per line)", placeholder="reports\nnotes/*.md")
        with gr.Row():
            inputs = gr.Textbox(label="Single input (JSON)", placeholder='{"question": "..."}')
            mapping = gr.Textbox(label="Mapping (JSON, optional)", placeholder='{"question": "q"}')
            fixed = gr.Textbox(label="Fixed inputs for every item (JSON, optional)")
        with gr.Row():
            concurrency = gr.Number(label="Concurrency (items in flight)", value=4, precision=0)
            rate = gr.Number(label="Rate limit (items/min, 0 = none)", value=0, precision=1)
            create_btn = gr.Button("Create job", variant="primary", elem_id="create-job")
        status = gr.Markdown(elem_id="job-status")
        table = gr.Dataframe(headers=JOB_HEADERS, interactive=False, elem_id="jobs-table")
        with gr.Row():
            job_id = gr.Textbox(label="Job id", elem_id="job-id")
            state_filter = gr.Dropdown(["all", *(s.value for s in ItemState)], value="all", label="Items")
            cancel_btn = gr.Button("Cancel job", variant="stop")
            retry_btn = gr.Button("Retry failed items")
        bar = gr.HTML(progress_html(""), elem_id="job-progress-box")
        links = gr.Markdown()
        items = gr.Dataframe(headers=ITEM_HEADERS, interactive=False, wrap=True, elem_id="job-items")

        gr.Markdown("## Schedules\nFire the job definition above on a cron (5 fields, or 6 with seconds last) in a "
                    "timezone. A tick missed while no scheduler ran fires late if it is recent enough, else it is "
                    "recorded as missed.")
        with gr.Row():
            sched_name = gr.Textbox(label="Schedule name", elem_id="schedule-name")
            cron = gr.Textbox(label="Cron", placeholder="0 9 * * 1-5", elem_id="schedule-cron")
            timezone = gr.Textbox(label="Timezone", value="UTC")
            preview_btn = gr.Button("Preview")
            sched_btn = gr.Button("Create schedule", variant="primary")
        sched_status = gr.Markdown(elem_id="schedule-status")
        sched_table = gr.Dataframe(headers=SCHEDULE_HEADERS, interactive=False, elem_id="schedules-table")
        with gr.Row():
            pause_btn = gr.Button("Pause")
            resume_btn = gr.Button("Resume")
        fires = gr.Dataframe(headers=FIRE_HEADERS, interactive=False, elem_id="schedule-fires")
        timer = gr.Timer(2.0)

        definition_fields = [workflow, version, kind, upload, paths, inputs, mapping, fixed, concurrency, rate]

        def view(job: str, state: str):
            return progress_html(job), items_table(job, state), downloads(job)

        def pick(rows, event: gr.SelectData):
            return str(rows.iloc[event.index[0], 0]) if event.index is not None else ""

        page.load(lambda: (jobs_table(), gr.update(choices=workflow_names()), schedules_table()),
                  outputs=[table, workflow, sched_table])
        create_btn.click(create_job, [workflow, version, name, kind, upload, paths, inputs, mapping, fixed, concurrency,
                                      rate], [status, table, job_id])
        table.select(pick, [table], [job_id])
        job_id.change(view, [job_id, state_filter], [bar, items, links])
        state_filter.change(view, [job_id, state_filter], [bar, items, links])
        timer.tick(lambda job, state: (*view(job, state), jobs_table()), [job_id, state_filter], [bar, items, links, table])
        cancel_btn.click(cancel_job, [job_id], [status])
        retry_btn.click(retry_job, [job_id], [status])
        preview_btn.click(preview, [cron, timezone], [sched_status])
        sched_btn.click(create_schedule, [sched_name, cron, timezone, *definition_fields], [sched_status, sched_table])
        pause_btn.click(lambda n: set_paused(n, True), [sched_name], [sched_status, sched_table])
        resume_btn.click(lambda n: set_paused(n, False), [sched_name], [sched_status, sched_table])
        sched_table.select(pick, [sched_table], [sched_name])
        sched_name.change(fires_table, [sched_name], [fires])
    return page


def mount_jobs(app: FastAPI) -> None:
    mount_page(app, build(), PATH, uploads=get_settings().job_upload_max_bytes)  # a job's CSV/JSONL source
