"""Evaluations in the browser: ``/evaluations``.

Keep test sets (import a CSV or JSONL file, or add a case by hand: every change is a new revision; browse a
revision's cases), run a workflow version over one on the workers and watch its progress bar, read its scores (a
bar per metric, how the cases' scores spread, the cases' latency as a histogram, the per-case table), and compare
two evaluations case by case, the cases that got worse first, their latency side by side. Handlers are plain
functions (tested without a browser) over the rooms the HTTP API uses; the HTML they show is drawn by
``ui._evaluations_html``. Mount with ``mount_evaluations(app)`` before the editor at ``/``.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from pydantic import ValidationError
from sqlmodel import col, select

from evaluations import compare as comparing
from evaluations import lifecycle, testsets
from evaluations.importing import MAX_CASES, MAX_IMPORT_BYTES, CaseIn, parse
from evaluations.metrics import MAX_DOCUMENTS, METRICS, MetricSettings
from evaluations.models import EvalResult, EvalState, TestSet
from jobs import lifecycle as jobs
from stackyard.errors import NotFound, StackyardError
from store.db import session_scope
from ui import fields
from ui._evaluations_html import (
    CASES_SHOWN,
    cell,
    compare_chart_html,
    compare_latency_html,
    compare_rows,
    input_cell,
    latency_html,
    progress_bar,
    result_rows,
    score,
    summary_html,
    worse_html,
)
from ui.pages import mount_page
from worker import batch
from workflows import crud
from workflows.bounds import INT32_MAX

PATH = "/evaluations"
SET_HEADERS = ["name", "revision", "cases", "description", "updated"]
CASE_HEADERS = ["key", "input", "expected answer", "expected sources", "tags"]
EVAL_HEADERS = ["id", "workflow", "version", "test set", "revision", "state", "recall", "failure rate", "created"]
RESULT_HEADERS = ["case", "input", "succeeded", "answer", "scores", "documents", "error"]
COMPARE_HEADERS = ["metric", "A", "B", "delta", "p-value", "better", "worse", "cases"]
DEFAULT_METRICS = ["recall", "mrr", "exact_match"]
PAGE_ROWS = 200
LATENCY_CASES = MAX_CASES    # as the scores' spread, every case a test set can hold, and no more
LABELS = {"data": "File", "format": "File", "cases": "Cases", "remove": "Cases", "name": "Test set name",
          "description": "Description", "test_set": "Test set", "state": "Evaluation", "evaluation": "Evaluation"}
CASE_FIELDS = {"key": "Case id", "inputs": "Input", "expected_answer": "Expected answer",
               "expected_sources": "Expected document id"}


def _md(text: str) -> str:
    return html.escape(text, quote=False)


def _fail(exc: Exception, label: str | None = None) -> str:
    """The ⚠️ line: the error after the page field it is about, unless it names that field already."""
    field = getattr(exc, "field", None)
    label = LABELS.get(field or "", field or label)
    message = str(exc)
    if isinstance(exc, ValidationError):
        message = f"{'.'.join(str(p) for p in exc.errors()[0]['loc'])}: {exc.errors()[0]['msg']}."
    if label and not message.lower().startswith(label.lower()):
        message = f"{label}: {message}"
    return f"⚠️ {_md(message)}"


def _refuse(label: str, message: str) -> StackyardError:
    return StackyardError(f"{label}: {message}", field=label)


def _number(value: Any, label: str) -> int | None:
    return fields.whole_number(value, field=label, high=INT32_MAX, hint="; leave it empty for the newest")


def _found(label: str, look: Callable[[], Any], hint: str | None = None) -> Any:
    """What ``look`` finds, or the page's error naming the field (``hint``, default the room's) when it is not."""
    try:
        return look()
    except NotFound as exc:
        raise _refuse(label, hint or str(exc)) from None


def _test_set(session: Any, name: str) -> TestSet:
    return _found("Test set", lambda: testsets.get(session, name), f"no test set '{name[:40]}'; import one first.")


def _evaluation(session: Any, evaluation_id: str | None, label: str) -> Any:
    chosen = (evaluation_id or "").strip()
    return _found(label, lambda: lifecycle.get(session, chosen),
                  f"{f'no evaluation {chosen[:40]!r}; ' if chosen else ''}pick one in the evaluations table.")


def _inputs(session: Any, revision_id: str, keys: list[str]) -> dict[str, dict[str, Any]]:
    return {key: case.inputs for key, case in testsets.cases_by_key(session, revision_id, keys).items()}


def test_set_names() -> list[str]:
    """The test sets' names, for the run form's list."""
    with session_scope() as session:
        return [t.name for t in testsets.list_all(session)]


def test_sets_table() -> list[list]:
    """Each test set with its newest revision's number and case count."""
    with session_scope() as session:
        return [[t.name, t.revision, testsets.revision(session, t).case_count, cell(t.description),
                 t.updated_at.strftime("%Y-%m-%d %H:%M:%S")] for t in testsets.list_all(session)]


def _save(name: str, description: str, cases: list[CaseIn], note: str, what: str) -> tuple[str, list[list], Any]:
    """A new test set holding ``cases``, or the named one's next revision with them added."""
    with session_scope() as session:
        made = testsets.add(session, name, cases, note=note, description=description or "")
        number, count = made.number, made.case_count
    return (f"✅ Test set '{name}' revision {number}: {count} case(s); {_md(what)}.", test_sets_table(),
            gr.update(choices=test_set_names(), value=name))


def import_cases(name: str, upload: str | None, description: str = "") -> tuple[str, list[list], Any]:
    """A CSV or JSONL file's cases as a new test set (revision 1), or as the named set's next revision (a case
    under a key the set has replaces it); the first bad line is refused, naming it, with nothing stored."""
    name = (name or "").strip()
    try:
        if not upload:
            raise _refuse("File", "pick a CSV or JSONL file first.")
        file = Path(upload)
        kind = "jsonl" if file.suffix.lower() in (".jsonl", ".ndjson") else "csv"
        try:
            text = file.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise _refuse("File", f"{file.name} is not UTF-8 text; save it as UTF-8.") from None
        cases = parse(text, kind)
        return _save(name, description, cases, f"imported {len(cases)} case(s) from {file.name}",
                     f"{len(cases)} imported from {file.name}")
    except (StackyardError, ValueError, OSError) as exc:
        return _fail(exc, "File"), test_sets_table(), gr.update()


def add_case(name: str, key: str, text: str, answer: str, document_id: str, snippet: str) -> tuple[str, list[list],
                                                                                                   Any]:
    """One case typed in: a new test set, or the named set's next revision (the same case id replaces a case)."""
    name, document_id = (name or "").strip(), (document_id or "").strip()
    try:
        if not (text or "").strip():
            raise _refuse("Input", "type the case's input (the question).")
        if (snippet or "").strip() and not document_id:
            raise _refuse("Expected document id", "give the document the snippet is from.")
        try:
            case = CaseIn(key=(key or "").strip() or None, inputs={"input": text},
                          expected_answer=(answer or "").strip() or None,
                          expected_sources=[{"document_id": document_id, "snippet": (snippet or "").strip()}]
                          if document_id else [])
        except ValidationError as exc:
            first = exc.errors()[0]
            raise _refuse(CASE_FIELDS.get(str(first["loc"][0]), "Case"), f"{first['msg']}.") from None
        return _save(name, "", [case], "one case added by hand", "one case added")
    except (StackyardError, ValueError) as exc:
        return _fail(exc), test_sets_table(), gr.update()


def cases_view(name: str, revision: Any, page: Any) -> tuple[str, list[list]]:
    """A page of a revision's cases (200 a page; default: the newest revision)."""
    if not (name or "").strip():
        return "Pick a test set in the table, or import one.", []
    try:
        number = _number(revision, "Revision")
        shown = fields.whole_number(page, field="Page", high=MAX_CASES // PAGE_ROWS, empty=1)
        with session_scope() as session:
            test_set = _test_set(session, name.strip())
            pinned = testsets.revision(session, test_set, number)
            cases = testsets.cases(session, pinned, offset=(shown - 1) * PAGE_ROWS, limit=PAGE_ROWS)
    except StackyardError as exc:
        return _fail(exc, "Revision"), []
    first = (shown - 1) * PAGE_ROWS
    line = (f"Revision {pinned.number} of '{test_set.name}' ({_md(pinned.note)}): {pinned.case_count} case(s); page "
            f"{shown} of {-(-pinned.case_count // PAGE_ROWS) or 1}"
            + (f", cases {first + 1}–{first + len(cases)}." if cases else ", past the last page."))
    return line, [[c.key, input_cell(c.inputs), cell(c.expected_answer or ""),
                   cell("; ".join(f"{s['document_id']}: {s.get('snippet') or ''}" for s in c.expected_sources)),
                   ", ".join(c.tags)] for c in cases]


def workflow_names() -> list[str]:
    """The workflows' names, for the run form's list."""
    with session_scope() as session:
        return [w.name for w in crud.list_workflows(session)]


def start_evaluation(workflow: str, version: Any, test_set: str, revision: Any, k: Any,
                     metrics: list[str] | None) -> tuple[str, str, list[list]]:
    """Start an evaluation (or find the same one finished or under way) and send its job to the workers; the
    line, its id and the evaluations table."""
    workflow, test_set = (workflow or "").strip(), (test_set or "").strip()
    try:
        if not workflow:
            raise _refuse("Workflow", "pick a workflow.")
        if not test_set:
            raise _refuse("Test set", "pick a test set (import one under Test sets).")
        if not metrics:
            raise _refuse("Metrics", "tick at least one.")
        settings = MetricSettings(metrics=list(metrics),
                                  k=fields.whole_number(k, field="k", high=MAX_DOCUMENTS, empty=5))
        number, pinned = _number(version, "Version"), _number(revision, "Revision")
        with session_scope() as session:
            _found("Workflow", lambda: crud.get_workflow(session, ref=workflow), f"no workflow '{workflow[:40]}'.")
            _found("Version", lambda: crud.get_version_id(session, ref=workflow, number=number),
                   f"workflow '{workflow}' has no version {number}; leave it empty for the newest.")
            chosen = _test_set(session, test_set)
            _found("Revision", lambda: testsets.revision(session, chosen, pinned))
            evaluation, reused = lifecycle.start(session, workflow=workflow, version=number, test_set=test_set,
                                                 revision=pinned, settings=settings)
            what = f"{workflow} v{evaluation.version} on {test_set} r{evaluation.revision}"
    except (StackyardError, ValueError) as exc:
        return _fail(exc), "", evaluations_table()
    if reused:
        return (f"✅ Evaluation {evaluation.id} ({_md(what)}) ran with the same version, cases, metrics and index "
                "already: it is shown, nothing runs again.", evaluation.id, evaluations_table())
    if evaluation.job_id:
        batch.dispatch(evaluation.job_id)
    return f"✅ Evaluation {evaluation.id} started: {_md(what)}.", evaluation.id, evaluations_table()


def _progress(evaluation_id: str) -> tuple[str, str]:
    """The evaluation's state and its progress bar."""
    if not (evaluation_id or "").strip():
        return "", "<p>Start an evaluation, or pick one in the evaluations table.</p>"
    try:
        with session_scope() as session:
            evaluation = _evaluation(session, evaluation_id, "Evaluation")
            counts, total = {}, 0
            if evaluation.job_id:
                job = jobs.get_job(session, job_id=evaluation.job_id)
                counts, total = jobs.progress(session, jobs=[job])[job.id].counts, job.total
    except StackyardError as exc:
        return "", f"<p>{_fail(exc)}</p>"
    state = evaluation.state.value
    return state, progress_bar(state, counts, total, evaluation.error)


def progress_html(evaluation_id: str) -> str:
    """The evaluation's job as a progress bar (cases run, failed) with its state: running, scoring, done."""
    return _progress(evaluation_id)[1]


def cancel_evaluation(evaluation_id: str) -> str:
    """Cancel a running evaluation and its job; the cases already run keep their results."""
    try:
        with session_scope() as session:
            cancelled = lifecycle.cancel(session, _evaluation(session, evaluation_id, "Evaluation"))
    except StackyardError as exc:
        return _fail(exc, "Evaluation")
    return f"✅ Evaluation {cancelled.id} cancelled; the cases already run stay, no new one starts."


def retry_evaluation(evaluation_id: str) -> str:
    """Run a finished evaluation's failed cases again; it is scored again once they are done."""
    try:
        with session_scope() as session:
            evaluation, count = lifecycle.retry_failed(session, _evaluation(session, evaluation_id, "Evaluation"))
    except StackyardError as exc:
        return _fail(exc, "Evaluation")
    if evaluation.job_id:
        batch.dispatch(evaluation.job_id)
    return f"✅ Running {count} failed case(s) of evaluation {evaluation.id} again; it is scored again after."


def evaluations_table(limit: int = 50) -> list[list]:
    """The newest evaluations: what ran on what, their state, recall mean and failure rate."""
    with session_scope() as session:
        names = {w.id: w.name for w in crud.list_workflows(session)}
        sets = {t.id: t.name for t in testsets.list_all(session)}
        return [[e.id, names.get(e.workflow_id, e.workflow_id), e.version, sets.get(e.test_set_id, "?"), e.revision,
                 e.state.value, score(((e.summary.get("metrics") or {}).get("recall") or {}).get("mean")),
                 "" if e.summary.get("failure_rate") is None else f"{e.summary['failure_rate']:.0%}",
                 e.created_at.strftime("%Y-%m-%d %H:%M:%S")] for e in lifecycle.list_for(session, limit=limit)]


def _latencies(session: Any, evaluation_id: str) -> list[tuple[str, float]]:
    """The cases that ran and their latency (case key, ms), in the test set's order: at most ``LATENCY_CASES``."""
    query = select(EvalResult.case_key, EvalResult.latency_ms).where(
        EvalResult.evaluation_id == evaluation_id, col(EvalResult.succeeded), col(EvalResult.latency_ms).is_not(None))
    return [(key, float(ms)) for key, ms in
            session.exec(query.order_by(col(EvalResult.position)).limit(LATENCY_CASES)).all()]


def results_view(evaluation_id: str) -> tuple[str, list[list]]:
    """An evaluation's summary (its metric means as bars, how the cases' scores spread, failures, latency as a
    histogram) and its per-case table (the first 200 cases)."""
    if not (evaluation_id or "").strip():
        return '<div id="ev-summary"></div>', []
    try:
        with session_scope() as session:
            evaluation = _evaluation(session, evaluation_id, "Evaluation")
            results = list(comparing.results(session, evaluation, limit=PAGE_ROWS).values())
            scored = list(comparing.scores(session, evaluation).values())   # every case, scores only
            inputs = _inputs(session, evaluation.revision_id, [r.case_key for r in results[:PAGE_ROWS]])
            title = (f"{crud.get_workflow(session, ref=evaluation.workflow_id).name} v{evaluation.version} on "
                     f"{session.get(TestSet, evaluation.test_set_id).name} r{evaluation.revision}")
            latencies = _latencies(session, evaluation.id) if evaluation.state == EvalState.DONE else []
    except StackyardError as exc:
        return f"<p>{_fail(exc)}</p>", []
    rows = result_rows(results[:PAGE_ROWS], inputs)
    state = evaluation.state.value
    if evaluation.state != EvalState.DONE:
        later = "; its scores show once it is done" if evaluation.state in (EvalState.RUNNING, EvalState.SCORING) \
            else ": it has no scores"
        return f'<div id="ev-summary" data-state="{state}"><p>{html.escape(title)} is {state}{later}.</p></div>', rows
    latency = latency_html(latencies, evaluation.summary.get("latency_ms"))
    return summary_html(title, state, evaluation.summary, scored, latency), rows


def compare_view(a: str, b: str) -> tuple[str, list[list], str, str]:
    """B against A (the baseline) case by case: per-metric means, delta and sign-test p-value, both means as bars,
    both runs' latency histograms on the same bins, and the cases that changed, worse first."""
    empty = ('<div id="ev-compare-chart"></div>', '<div id="ev-worse"></div>')
    if not (a or "").strip() or not (b or "").strip():
        return "⚠️ Compare: give two evaluation ids, A (the baseline) and B.", [], *empty
    try:
        with session_scope() as session:
            first = _evaluation(session, a, "A")
            report = comparing.compare(session, first, _evaluation(session, b, "B"))
            inputs = _inputs(session, first.revision_id, [c["key"] for c in report["cases"][:CASES_SHOWN]])
            latency = compare_latency_html(_latencies(session, report["a"]), _latencies(session, report["b"]),
                                           report["latency_ms"])
    except StackyardError as exc:
        return _fail(exc, "Compare"), [], *empty
    metrics = report["metrics"]
    rate = report["failure_rate"]
    line = (f"**B against A** on revision {report['revision']}: {len(report['worse'])} case(s) got worse on a "
            f"metric; failure rate {rate['a'] or 0:.0%} → {rate['b'] or 0:.0%}.")
    extra = [f"{len(report[k])} case(s) only in {k[-1].upper()}." for k in ("only_in_a", "only_in_b") if report[k]]
    line += "".join(f" {_md(note)}" for note in [*report["notes"], *extra])
    return (line, compare_rows(metrics), compare_chart_html(metrics) + latency,
            worse_html(report["cases"], set(report["worse"]), inputs))


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard evaluations") as page:
        gr.Markdown("## Evaluations\nScore a workflow version on a test set of cases (retrieval: recall, MRR, MAP, "
                    "NDCG at k; answers: exact match, semantic similarity), then compare two runs case by case.")
        gr.Markdown("### Test sets\nCSV: an `input` column (or `input.<name>` per workflow input), optional `id`, "
                    "`expected_answer`, `expected_document_ids` (`|` between), `expected_snippet`, `tags`. JSONL: "
                    '`{"id", "input", "expected_answer", "expected_sources": [{"document_id", "snippet"}]}` a line. '
                    "Adding to a set writes its next revision; a case with an id the set has replaces it.")
        sets = gr.Dataframe(headers=SET_HEADERS, interactive=False, elem_id="ev-sets")
        with gr.Row():
            set_name = gr.Textbox(label="Test set name", placeholder="faq", elem_id="ev-set-name")
            description = gr.Textbox(label="Description (a new set)")
            upload = gr.File(label="CSV / JSONL", file_types=[".csv", ".jsonl", ".ndjson"], type="filepath",
                             elem_id="ev-upload")
            import_btn = gr.Button("Import file", variant="primary", elem_id="ev-import")
        with gr.Accordion("Add one case by hand", open=False, elem_id="ev-hand"):
            with gr.Row():
                case_key = gr.Textbox(label="Case id (optional)")
                case_input = gr.Textbox(label="Input", lines=2, elem_id="ev-case-input")
                case_answer = gr.Textbox(label="Expected answer", lines=2)
                case_document = gr.Textbox(label="Expected document id")
                case_snippet = gr.Textbox(label="Expected snippet", lines=2)
            add_btn = gr.Button("Add case", elem_id="ev-add")
        set_status = gr.Markdown(elem_id="ev-set-message")
        with gr.Row():
            browse_revision = gr.Textbox(label="Revision", placeholder="the newest", max_lines=1)
            browse_page = gr.Number(label="Page (200 cases a page)", value=1, precision=0)
            browse_btn = gr.Button("Show cases")
        cases_line = gr.Markdown(elem_id="ev-cases-line")
        cases = gr.Dataframe(headers=CASE_HEADERS, interactive=False, wrap=True, elem_id="ev-cases")

        gr.Markdown("### Run an evaluation\nThe workers run every case as a batch job, then score it. The same "
                    "version, cases, metrics and index run once: asking again shows that run.")
        with gr.Row():
            workflow = gr.Dropdown(label="Workflow", choices=[], allow_custom_value=True, elem_id="ev-workflow")
            version = gr.Textbox(label="Version", placeholder="the newest", max_lines=1)
            test_set = gr.Dropdown(label="Test set", choices=[], allow_custom_value=True, elem_id="ev-test-set")
            revision = gr.Textbox(label="Test set revision", placeholder="the newest", max_lines=1)
            k = gr.Number(label="k (documents read)", value=5, precision=0)
        metrics = gr.CheckboxGroup(list(METRICS), value=DEFAULT_METRICS, label="Metrics", elem_id="ev-metrics")
        start_btn = gr.Button("Start evaluation", variant="primary", elem_id="ev-start")
        status = gr.Markdown(elem_id="ev-message")
        with gr.Row():
            evaluation_id = gr.Textbox(label="Evaluation id", elem_id="ev-id")
            cancel_btn = gr.Button("Cancel evaluation", variant="stop")
            retry_btn = gr.Button("Retry failed cases")
            to_a = gr.Button("Compare: use as A")
            to_b = gr.Button("Compare: use as B")
        bar = gr.HTML(progress_html(""), elem_id="ev-progress-box")

        gr.Markdown("### Results")
        evaluations = gr.Dataframe(headers=EVAL_HEADERS, interactive=False, elem_id="ev-evaluations")
        summary = gr.HTML(elem_id="ev-summary-box")
        results = gr.Dataframe(headers=RESULT_HEADERS, interactive=False, wrap=True, elem_id="ev-results")

        gr.Markdown("### Compare\nB against A (the baseline), on the same test-set revision, case by case. The "
                    "p-value: how likely a split of better and worse cases at least this uneven is by chance.")
        with gr.Row():
            a = gr.Textbox(label="A (baseline) evaluation id", elem_id="ev-a")
            b = gr.Textbox(label="B evaluation id", elem_id="ev-b")
            compare_btn = gr.Button("Compare", variant="primary", elem_id="ev-compare-btn")
        compare_line = gr.Markdown(elem_id="ev-compare-line")
        compare_table = gr.Dataframe(headers=COMPARE_HEADERS, interactive=False, elem_id="ev-compare")
        compare_chart = gr.HTML(elem_id="ev-compare-chart-box")
        worse = gr.HTML(elem_id="ev-worse-box")
        seen = gr.State("")
        timer = gr.Timer(1.5)

        def pick(rows, event: gr.SelectData):
            return str(rows.iloc[event.index[0], 0]) if event.index is not None else ""

        def view(chosen: str):
            state, shown = _progress(chosen)
            return shown, state, *results_view(chosen)

        def tick(chosen: str, before: str):
            state, shown = _progress(chosen)
            if state == before:
                return shown, before, gr.update(), gr.update(), gr.update()
            return shown, state, *results_view(chosen), evaluations_table()

        saved = [set_status, sets, test_set]
        page.load(lambda: (test_sets_table(), gr.update(choices=workflow_names()), gr.update(choices=test_set_names()),
                           evaluations_table()), outputs=[sets, workflow, test_set, evaluations])
        import_btn.click(import_cases, [set_name, upload, description], saved).then(
            cases_view, [set_name, browse_revision, browse_page], [cases_line, cases])
        add_btn.click(add_case, [set_name, case_key, case_input, case_answer, case_document, case_snippet], saved).then(
            cases_view, [set_name, browse_revision, browse_page], [cases_line, cases])
        sets.select(pick, [sets], [set_name]).then(cases_view, [set_name, browse_revision, browse_page],
                                                   [cases_line, cases])
        browse_btn.click(cases_view, [set_name, browse_revision, browse_page], [cases_line, cases])
        start_btn.click(start_evaluation, [workflow, version, test_set, revision, k, metrics],
                        [status, evaluation_id, evaluations])
        evaluations.select(pick, [evaluations], [evaluation_id])
        evaluation_id.change(view, [evaluation_id], [bar, seen, summary, results])
        timer.tick(tick, [evaluation_id, seen], [bar, seen, summary, results, evaluations])
        cancel_btn.click(cancel_evaluation, [evaluation_id], [status])
        retry_btn.click(retry_evaluation, [evaluation_id], [status])
        to_a.click(lambda chosen: chosen, [evaluation_id], [a])
        to_b.click(lambda chosen: chosen, [evaluation_id], [b])
        compare_btn.click(compare_view, [a, b], [compare_line, compare_table, compare_chart, worse])
    return page


def mount_evaluations(app: FastAPI) -> None:
    """Serve the page at ``/evaluations``, taking uploads up to an import's size limit."""
    mount_page(app, build(), PATH, uploads=MAX_IMPORT_BYTES)
