"""Scoring an evaluation's cases: on the worker that ran them, a batch at a time as their runs end
(:func:`score_finished`, so scoring spreads over the workers, overlaps the runs and gets a model's batch
speed), and the whole evaluation once its job is over (:func:`score`): cases no worker scored are scored then,
and one result row per case is written with the summary, in one transaction with the move to done (scored
twice, e.g. after a worker died, it is written once). Cases are read in pages: 100,000 cases with their
documents are never held at once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import bindparam, delete, insert, update
from sqlmodel import Session, col, select

from evaluations import lifecycle
from evaluations.metrics import (
    JUDGED,
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
PAGE = 1000
MAX_TARGETS = 64


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


def score_metrics(cases: list[CaseRun], settings: MetricSettings) -> None:
    """Every metric the settings name, for these cases, into each case's ``scores`` and ``errors``."""
    score_retrieval(cases, settings)
    score_answers(cases, settings, get_settings().local_model_path(settings.sas_model))
    score_judged(cases, settings)


@dataclass(frozen=True)
class _Target:
    """What a worker needs to score an evaluation job's items: the cases' revision, the metric settings, and
    the cases' positions in item order (item n runs the n-th case by position)."""

    revision_id: str
    settings: MetricSettings
    positions: list[int]


_targets: dict[str, _Target | None] = {}      # job id → its evaluation's target, None for other jobs
_targets_lock = threading.Lock()


def _target(job_id: str) -> _Target | None:
    with _targets_lock:
        if job_id in _targets:
            return _targets[job_id]
    with session_scope() as session:    # an evaluation and its job are committed together: the answer is final
        found = session.exec(select(Evaluation.revision_id, Evaluation.settings)
                             .where(Evaluation.job_id == job_id)).first()
        target = None
        if found is not None:
            positions = list(session.exec(select(TestCase.position).where(TestCase.revision_id == found[0])
                                          .order_by(col(TestCase.position))).all())
            target = _Target(found[0], MetricSettings(**found[1]), positions)
    with _targets_lock:
        if len(_targets) >= MAX_TARGETS:
            _targets.clear()
        _targets[job_id] = target
    return target


@dataclass(frozen=True)
class FinishedCase:
    """A job item that a worker ran to success: what scoring it needs (its attempt, so scores of an attempt
    taken back are never written over a later one)."""

    job_id: str
    item_id: int
    item_index: int
    attempt: int
    outputs: dict[str, Any]


def scoring_mode(job_id: str) -> Literal["now", "batch"] | None:
    """How a worker scores this job's items (cached per process): None when it runs no evaluation; ``now``
    when an LLM judge is asked, one case at a time before its item is written (:func:`scores_now`), so no judge
    is ever asked twice about a case (a call costs money); ``batch`` otherwise (:func:`score_finished`)."""
    target = _target(job_id)
    if target is None:
        return None
    return "now" if any(metric in JUDGED for metric in target.settings.metrics) else "batch"


def _scored_runs(job_id: str, finished: list[FinishedCase]) -> list[tuple[FinishedCase, CaseRun]]:
    """These finished items of one job, scored together (one SAS batch, one judge pass); none for other jobs."""
    target = _target(job_id)
    if target is None:
        return []
    group = [c for c in finished if 0 <= c.item_index < len(target.positions)]
    with session_scope() as session:
        cases = {case.position: case for case in session.exec(select(TestCase).where(
            TestCase.revision_id == target.revision_id,
            col(TestCase.position).in_([target.positions[c.item_index] for c in group]))).all()}
        session.expunge_all()
    pairs = [(item, _case_run(cases[target.positions[item.item_index]], item.outputs, target.settings,
                              succeeded=True))
             for item in group if target.positions[item.item_index] in cases]
    score_metrics([run for _, run in pairs], target.settings)
    return pairs


def scores_now(case: FinishedCase) -> dict[str, Any] | None:
    """One case's ``{"scores", "errors"}``, for its item's own write; None when its job runs no evaluation. A
    judge that fails is an error of the case, not of its run."""
    return next(({"scores": run.scores, "errors": run.errors} for _, run in _scored_runs(case.job_id, [case])), None)


def score_finished(finished: list[FinishedCase]) -> int:
    """Score these finished items in one pass per job and write each one's ``{"scores", "errors"}`` to its job
    item while it is still that attempt's success; the number written. Items of other jobs are skipped."""
    written = 0
    by_job: dict[str, list[FinishedCase]] = {}
    for case in finished:
        by_job.setdefault(case.job_id, []).append(case)
    for job_id, group in by_job.items():
        pairs = _scored_runs(job_id, group)
        with session_scope() as session:
            for item, run in sorted(pairs, key=lambda pair: pair[0].item_id):
                written += session.connection().execute(_SCORES, {
                    "item": item.item_id, "job": item.job_id, "index": item.item_index, "attempt": item.attempt,
                    "case_scores": {"scores": run.scores, "errors": run.errors}}).rowcount
    return written


_items = JobItem.__table__.c
# That item's success still (SQLite reuses freed ids); built once, as it is written for every case.
_SCORES = update(JobItem).where(
    _items.id == bindparam("item"), _items.job_id == bindparam("job"), _items.item_index == bindparam("index"),
    _items.attempts == bindparam("attempt"), _items.state == ItemState.SUCCEEDED).values(
    scores=bindparam("case_scores"))


def score(evaluation_id: str, *, beat_seconds: float = 3.0) -> EvalState | None:
    """Score an evaluation claimed for scoring; its new state, or None when this scorer does not hold it (not
    being scored, or claimed again after this one was presumed dead: the newer claim writes)."""
    with session_scope() as session:
        evaluation = session.get(Evaluation, evaluation_id)
        if evaluation is None or evaluation.state != EvalState.SCORING:
            return None
        attempt = evaluation.attempts
        session.expunge(evaluation)
    heartbeat, began = Heartbeat(evaluation_id, attempt, beat_seconds), time.perf_counter()
    heartbeat.start()
    try:
        settings = MetricSettings(**evaluation.settings)
        late = _score_the_unscored(evaluation, settings)
        with session_scope() as session:
            session.execute(delete(EvalResult).where(col(EvalResult.evaluation_id) == evaluation_id))
            tallies, latencies = [], []
            for offset, cases, items, known in _pages(session, evaluation):
                runs = []
                for index, case in enumerate(cases, start=offset):
                    run = _case_run(case, _outputs(items.get(index)), settings,
                                    succeeded=_succeeded(items.get(index)))
                    run.scores, run.errors = _scored(run, items.get(index), late)
                    if not run.succeeded:
                        run.errors = {metric: RUN_FAILED for metric in settings.metrics}
                    elif (duration := items[index].duration_ms) is not None:
                        latencies.append(duration)
                    runs.append(run)
                _mark_unknown_sources(runs, known)
                session.execute(insert(EvalResult), [_row(evaluation_id, index, run, items.get(index))
                                                     for index, run in enumerate(runs, start=offset)])
                tallies.extend(CaseRun(key=run.key, succeeded=run.succeeded, scores=run.scores, errors=run.errors)
                               for run in runs)      # only what the summary reads is kept past the page
                session.expunge_all()
            summary = summarise(tallies, latencies, settings)
            summary["unknown_sources"] = [run.key for run in tallies if "sources" in run.errors]
            moved = lifecycle.scored(session, evaluation_id, summary, attempt)
            if moved is None:             # cancelled, or claimed again meanwhile: the other scorer's results stand
                session.rollback()
                return None
        log.info("evaluation %s scored: %d cases, %d scored here (not by their worker), in %.1f s", evaluation_id,
                 len(tallies), len(late), time.perf_counter() - began)
        return moved.state
    except Exception as exc:  # noqa: BLE001 - the evaluation records why; the worker goes on
        log.exception("evaluation %s could not be scored", evaluation_id)
        with session_scope() as session:
            moved = lifecycle.failed(session, evaluation_id, redact(f"could not be scored: {type(exc).__name__}: {exc}"),
                                     attempt=attempt)
        return moved.state if moved else None
    finally:
        heartbeat.done.set()


Scored = tuple[dict[str, float | None], dict[str, str]]


def _score_the_unscored(evaluation: Evaluation, settings: MetricSettings) -> dict[str, Scored]:
    """Cases whose run succeeded but that no worker scored (it could not, or ran before scoring moved to the
    workers), scored here a page at a time; by case key. Nothing is written: the caller writes every row."""
    late: dict[str, Scored] = {}
    with session_scope() as session:
        for offset, cases, items, _ in _pages(session, evaluation):
            runs = [_case_run(case, _outputs(items.get(index)), settings, succeeded=True)
                    for index, case in enumerate(cases, start=offset)
                    if _succeeded(items.get(index)) and items[index].scores is None]
            score_metrics(runs, settings)
            late.update({run.key: (run.scores, run.errors) for run in runs})
            session.expunge_all()
    return late


def _scored(run: CaseRun, item: JobItem | None, late: dict[str, Scored]) -> Scored:
    if not run.succeeded:
        return {}, {}
    if run.key in late:
        return late[run.key]
    kept = item.scores if item is not None and item.scores else {}
    return dict(kept.get("scores") or {}), dict(kept.get("errors") or {})


def _pages(session: Session, evaluation: Evaluation) -> Iterator[tuple[int, list[TestCase], dict[int, JobItem],
                                                                       set[str]]]:
    """The evaluation's cases in position order, a page at a time: (the first case's item index, the cases,
    their job items by index, the expected documents some knowledge base has)."""
    offset, after = 0, None
    while True:
        query = select(TestCase).where(TestCase.revision_id == evaluation.revision_id)
        if after is not None:
            query = query.where(col(TestCase.position) > after)
        cases = list(session.exec(query.order_by(col(TestCase.position)).limit(PAGE)).all())
        if not cases:
            return
        items = {item.item_index: item for item in session.exec(select(JobItem).where(
            JobItem.job_id == evaluation.job_id, col(JobItem.item_index) >= offset,
            col(JobItem.item_index) < offset + len(cases))).all()}
        named = sorted({s.get("document_id") for c in cases for s in c.expected_sources if s.get("document_id")})
        known: set[str] = set()
        for first in range(0, len(named), PAGE):          # bounded IN lists, whatever the test set names
            known.update(session.exec(select(KbDocument.id).where(
                col(KbDocument.id).in_(named[first:first + PAGE]))).all())
        yield offset, cases, items, known
        offset, after = offset + len(cases), cases[-1].position


def _succeeded(item: JobItem | None) -> bool:
    return item is not None and item.state == ItemState.SUCCEEDED


def _outputs(item: JobItem | None) -> dict[str, Any] | None:
    return item.outputs if _succeeded(item) else None


def _case_run(case: TestCase, outputs: dict[str, Any] | None, settings: MetricSettings, *,
              succeeded: bool) -> CaseRun:
    answer, documents = read_outputs(outputs if succeeded else None, settings)
    return CaseRun(key=case.key, succeeded=succeeded, answer=answer, documents=documents,
                   question=_question(case.inputs), expected_answer=case.expected_answer,
                   expected_sources=case.expected_sources)


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
