"""Scoring an evaluation on a worker, once its job is over: each case's run read (answer, documents, latency,
error), scored with the metrics its settings name, written as one result row per case with the summary, in
one transaction with the move to done (scored twice, e.g. after a worker died, it is written once)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from sqlalchemy import delete, insert
from sqlmodel import col, select

from evaluations import lifecycle
from evaluations.metrics import (
    CaseRun,
    MetricSettings,
    read_extras,
    read_outputs,
    score_answers,
    score_judged,
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


class Heartbeat(threading.Thread):
    """Renews the scorer's claim while it scores (a long SAS or judge pass is not a dead worker); stops when the
    claim is gone."""

    def __init__(self, evaluation_id: str, attempt: int, every: float) -> None:
        super().__init__(daemon=True, name=f"heartbeat-evaluation-{evaluation_id}")
        self.evaluation_id, self.attempt, self.every = evaluation_id, attempt, every
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every):
            try:
                with session_scope() as session:
                    if not lifecycle.beat(session, self.evaluation_id, self.attempt):
                        return
            except Exception:  # noqa: BLE001 - a missed beat is retried; the claim tolerates several
                log.exception("heartbeat failed for evaluation %s", self.evaluation_id)


def score(evaluation_id: str, *, beat_seconds: float = 3.0) -> EvalState | None:
    """Score an evaluation claimed for scoring; its new state, or None when this scorer does not hold it (not
    being scored, or claimed again after this one was presumed dead: the newer claim writes)."""
    with session_scope() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None or evaluation.state != EvalState.SCORING:
            return None
        attempt = evaluation.attempts
    heartbeat = Heartbeat(evaluation_id, attempt, beat_seconds)
    heartbeat.start()
    try:
        runs, items, latencies, settings = _load(evaluation)
        score_retrieval(runs, settings)
        score_answers(runs, settings, get_settings().local_model_path(settings.sas_model))
        score_judged(runs, settings)
        summary = summarise(runs, latencies, settings)
        summary["unknown_sources"] = [run.key for run in runs if "sources" in run.errors]
        with session_scope() as session:
            session.execute(delete(EvalResult).where(col(EvalResult.evaluation_id) == evaluation_id))
            rows = [_row(evaluation_id, position, run, items.get(position)) for position, run in enumerate(runs)]
            for first in range(0, len(rows), 1000):
                session.execute(insert(EvalResult), rows[first:first + 1000])
            moved = lifecycle.scored(session, evaluation_id, summary, attempt)
            if moved is None:             # cancelled, or claimed again meanwhile: the other scorer's results stand
                session.rollback()
                return None
        return moved.state
    except Exception as exc:  # noqa: BLE001 - the evaluation records why; the worker goes on
        log.exception("evaluation %s could not be scored", evaluation_id)
        with session_scope() as session:
            moved = lifecycle.failed(session, evaluation_id, redact(f"could not be scored: {type(exc).__name__}: {exc}"),
                                     attempt=attempt)
        return moved.state if moved else None
    finally:
        heartbeat.done.set()


def _load(evaluation: Evaluation) -> tuple[list[CaseRun], dict[int, JobItem], list[float], MetricSettings]:
    """The evaluation's cases as their runs answered them, with expected documents no knowledge base has
    marked on the case."""
    settings = MetricSettings(**evaluation.settings)
    with session_scope() as session:
        cases = list(session.exec(select(TestCase).where(TestCase.revision_id == evaluation.revision_id)
                                  .order_by(col(TestCase.position))).all())
        items = {item.item_index: item for item in session.exec(select(JobItem).where(
            JobItem.job_id == evaluation.job_id)).all()}
        named = sorted({s.get("document_id") for c in cases for s in c.expected_sources if s.get("document_id")})
        known = set()
        for first in range(0, len(named), 1000):          # bounded IN lists, whatever the test set names
            known.update(session.exec(select(KbDocument.id).where(
                col(KbDocument.id).in_(named[first:first + 1000]))).all())
        session.expunge_all()
    runs, latencies = _read(cases, items, settings)
    _mark_unknown_sources(runs, known)
    return runs, items, latencies, settings


def _read(cases: list[TestCase], items: dict[int, JobItem], settings: MetricSettings) -> tuple[list[CaseRun],
                                                                                                  list[float]]:
    runs, latencies = [], []
    for position, case in enumerate(cases):
        item = items.get(position)
        succeeded = item is not None and item.state == ItemState.SUCCEEDED
        answer, documents = read_outputs(item.outputs if succeeded else None, settings)
        run = CaseRun(key=case.key, succeeded=succeeded, answer=answer, documents=documents,
                      question=_question(case.inputs), expected_answer=case.expected_answer,
                      expected_sources=case.expected_sources)
        if not succeeded:
            run.errors = {metric: RUN_FAILED for metric in settings.metrics}
        elif item.duration_ms is not None:
            latencies.append(item.duration_ms)
        runs.append(run)
    return runs, latencies


def _question(inputs: dict[str, Any]) -> str | None:
    """What the judge reads as the question: the case's ``input``, else its first text input."""
    value = inputs.get("input")
    if isinstance(value, str):
        return value
    return next((v for v in inputs.values() if isinstance(v, str)), None)


def _mark_unknown_sources(runs: list[CaseRun], known: set[str]) -> None:
    """Cases expecting a document no knowledge base has (deleted, or a typo): said on the case (and so in the
    summary); the case still counts (nothing can find it, so it scores 0)."""
    for run in runs:
        missing = sorted({s.get("document_id") for s in run.expected_sources} - known - {None})
        if missing:
            run.errors["sources"] = f"expected document(s) {', '.join(missing[:3])} are in no knowledge base"


def _row(evaluation_id: str, position: int, run: CaseRun, item: JobItem | None) -> dict[str, Any]:
    documents = [{"id": d.get("id"), "document_id": (d.get("meta") or {}).get("kb_document_id"),
                  "score": d.get("score"), "snippet": (d.get("content") or "")[:SNIPPET_CHARS]}
                 for d in run.documents]
    prompt, tokens = read_extras(item.outputs if item is not None and run.succeeded else None)
    return {"evaluation_id": evaluation_id, "case_key": run.key, "position": position, "succeeded": run.succeeded,
            "prompt": prompt[:MAX_ANSWER_CHARS] if prompt else None, "tokens": tokens,
            "answer": (run.answer or "")[:MAX_ANSWER_CHARS] if run.answer is not None else None,
            "documents": documents, "latency_ms": item.duration_ms if item is not None and run.succeeded else None,
            "error": (item.error if item is not None else "never ran") if not run.succeeded else None,
            "scores": run.scores, "errors": run.errors}
