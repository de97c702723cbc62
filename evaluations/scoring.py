"""Scoring an evaluation on a worker, once its job is over: each case's run read (answer, documents, latency,
error), scored with the metrics its settings name, written as one result row per case with the summary, in
one transaction with the move to done (scored twice, e.g. after a worker died, it is written once)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import delete, insert
from sqlmodel import col, select

from evaluations import lifecycle
from evaluations.metrics import (
    METRICS,
    CaseRun,
    MetricSettings,
    read_outputs,
    score_answers,
    score_retrieval,
    summarise,
)
from evaluations.models import EvalResult, EvalState, Evaluation, TestCase
from jobs.models import ItemState, JobItem
from knowledge.models import KbDocument
from stackyard.redact import redact
from stackyard.settings import get_settings
from store.db import session_scope

log = logging.getLogger("stackyard.evaluations")
RUN_FAILED = "the run failed"
MAX_ANSWER_CHARS = 20_000
SNIPPET_CHARS = 300


def score(evaluation_id: str) -> EvalState | None:
    """Score an evaluation claimed for scoring; its new state, or None when it is not being scored."""
    with session_scope() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None or evaluation.state != EvalState.SCORING:
            return None
        settings = MetricSettings(**evaluation.settings)
        cases = list(session.exec(select(TestCase).where(TestCase.revision_id == evaluation.revision_id)
                                  .order_by(col(TestCase.position))).all())
        items = {item.item_index: item for item in session.exec(select(JobItem).where(
            JobItem.job_id == evaluation.job_id)).all()}
        named = {s.get("document_id") for c in cases for s in c.expected_sources if s.get("document_id")}
        known = set(session.exec(select(KbDocument.id).where(col(KbDocument.id).in_(sorted(named)))).all()) \
            if named else set()
        session.expunge_all()
    try:
        runs, latencies = _read(cases, items, settings)
        unknown = _unknown_sources(runs, known)
        score_retrieval(runs, settings)
        score_answers(runs, settings, get_settings().local_model_path(settings.sas_model))
        summary = summarise(runs, latencies, settings)
        summary["unknown_sources"] = unknown
    except Exception as exc:  # noqa: BLE001 - the evaluation records why; the worker goes on
        log.exception("evaluation %s could not be scored", evaluation_id)
        with session_scope() as session:
            moved = lifecycle.failed(session, evaluation_id, redact(f"could not be scored: {type(exc).__name__}: {exc}"))
        return moved.state if moved else None
    with session_scope() as session:
        session.execute(delete(EvalResult).where(col(EvalResult.evaluation_id) == evaluation_id))
        rows = [_row(evaluation_id, position, run, items.get(position)) for position, run in enumerate(runs)]
        for first in range(0, len(rows), 1000):
            session.execute(insert(EvalResult), rows[first:first + 1000])
        moved = lifecycle.scored(session, evaluation_id, summary)
        if moved is None:                 # cancelled, or scored by another meanwhile: its results stand
            session.rollback()
            return None
    return moved.state


def _read(cases: list[TestCase], items: dict[int, JobItem], settings: MetricSettings) -> tuple[list[CaseRun],
                                                                                                  list[float]]:
    runs, latencies = [], []
    for position, case in enumerate(cases):
        item = items.get(position)
        succeeded = item is not None and item.state == ItemState.SUCCEEDED
        answer, documents = read_outputs(item.outputs if succeeded else None, settings)
        run = CaseRun(key=case.key, succeeded=succeeded, answer=answer, documents=documents,
                      expected_answer=case.expected_answer, expected_sources=case.expected_sources)
        if not succeeded:
            run.errors = {metric: RUN_FAILED for metric in settings.metrics if metric in METRICS}
        elif item.duration_ms is not None:
            latencies.append(item.duration_ms)
        runs.append(run)
    return runs, latencies


def _unknown_sources(runs: list[CaseRun], known: set[str]) -> list[str]:
    """Cases expecting a document no knowledge base has (deleted, or a typo): said on the case and in the
    summary; the case still counts (nothing can find it, so it scores 0)."""
    flagged = []
    for run in runs:
        missing = sorted({s.get("document_id") for s in run.expected_sources} - known - {None})
        if missing:
            run.errors["sources"] = f"expected document(s) {', '.join(missing[:3])} are in no knowledge base"
            flagged.append(run.key)
    return flagged


def _row(evaluation_id: str, position: int, run: CaseRun, item: JobItem | None) -> dict[str, Any]:
    documents = [{"id": d.get("id"), "document_id": (d.get("meta") or {}).get("kb_document_id"),
                  "score": d.get("score"), "snippet": (d.get("content") or "")[:SNIPPET_CHARS]}
                 for d in run.documents]
    return {"evaluation_id": evaluation_id, "case_key": run.key, "position": position, "succeeded": run.succeeded,
            "answer": (run.answer or "")[:MAX_ANSWER_CHARS] if run.answer is not None else None,
            "documents": documents, "latency_ms": item.duration_ms if item is not None and run.succeeded else None,
            "error": (item.error if item is not None else "never ran") if not run.succeeded else None,
            "scores": run.scores, "errors": run.errors}
