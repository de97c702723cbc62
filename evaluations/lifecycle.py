"""An evaluation's life: created with its batch job (one item per case, the workers' fan-out, throttling and crash
safety), scored once the job is over, done. Every move of ``Evaluation.state`` is here.

running ──(job over, a worker claims it)──▶ scoring ──▶ done | failed
running ──(cancel)──▶ cancelled

A finished evaluation is reused when version, test-set revision, metric settings and the knowledge-base index
generations its workflow reads all match, and those bases hold what they held (``reuse_key``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import case as sql_case
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from evaluations import testsets
from evaluations.importing import INPUT, BadTestSet
from evaluations.metrics import MetricSettings
from evaluations.models import EvalState, Evaluation, TestCase, TestSet
from jobs import lifecycle as jobs
from jobs.models import Job, JobState
from jobs.sources import ItemRecords
from knowledge.bases import get as knowledge_base
from knowledge.models import KbChunk, KbDocument
from knowledge.search import named_bases
from runs.lifecycle import version_info
from stackyard.errors import NotFound
from store.clock import utcnow
from store.transitions import compare_and_set
from workflows import crud

ALLOWED: dict[EvalState, frozenset[EvalState]] = {
    EvalState.SCORING: frozenset({EvalState.RUNNING, EvalState.SCORING}),   # again: a scorer that died
    EvalState.DONE: frozenset({EvalState.SCORING}),
    EvalState.FAILED: frozenset({EvalState.SCORING, EvalState.RUNNING}),
    EvalState.CANCELLED: frozenset({EvalState.RUNNING}),
    EvalState.RUNNING: frozenset({EvalState.DONE, EvalState.FAILED}),       # failed cases run again
}
TERMINAL = frozenset({EvalState.DONE, EvalState.FAILED, EvalState.CANCELLED})


def transition(session: Session, evaluation_id: str, to: EvalState, *, where: Any = None, commit: bool = False,
               **fields: Any) -> Evaluation | None:
    """Move an evaluation to ``to`` if its state allows it; the only writer of ``Evaluation.state``."""
    return compare_and_set(session, Evaluation, evaluation_id, to, ALLOWED[to], terminal=to in TERMINAL,
                           where=where, commit=commit, **fields)


def generations(session: Session, spec: Any) -> dict[str, int]:
    """The index generation of each knowledge base the workflow reads: a re-index is another index."""
    found = {}
    for name in sorted(named_bases(spec.model_dump() if hasattr(spec, "model_dump") else spec)):
        try:
            found[name] = knowledge_base(session, name).generation
        except NotFound:
            found[name] = 0
    return found


def contents(session: Session, names: list[str]) -> dict[str, list[Any]]:
    """What each knowledge base holds now, in a few figures (documents, the last indexed, chunks, those switched
    on, their total length): a document added, deleted, switched or re-indexed, or a chunk edited, changes them,
    so an evaluation before it is not reused after it."""
    found = {}
    for name in names:
        try:
            base = knowledge_base(session, name)
        except NotFound:
            continue
        documents = session.exec(select(func.count(), func.max(KbDocument.finished_at)).where(
            KbDocument.kb_id == base.id, KbDocument.enabled)).one()
        chunks = session.exec(select(func.count(), func.sum(sql_case((col(KbChunk.enabled), 1), else_=0)),
                                     func.sum(func.length(KbChunk.text))).where(KbChunk.kb_id == base.id)).one()
        found[name] = [documents[0], str(documents[1]), *chunks]
    return found


def reuse_key(version_id: str, revision_id: str, settings: MetricSettings, generation: dict[str, int],
              content: dict[str, list[Any]] | None = None) -> str:
    text = json.dumps([version_id, revision_id, settings.model_dump(), generation, content or {}], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def reusable(session: Session, key: str) -> Evaluation | None:
    """The newest finished evaluation with this reuse key, else one still running or being scored (asking twice
    does not run it twice), if any."""
    for states in ((EvalState.DONE,), (EvalState.RUNNING, EvalState.SCORING)):
        found = session.exec(select(Evaluation).where(Evaluation.reuse_key == key, col(Evaluation.state).in_(states))
                             .order_by(col(Evaluation.created_at).desc())).first()
        if found is not None:
            return found
    return None


def _records(spec: Any, required: list[str], cases: list[TestCase]) -> list[dict[str, Any]]:
    """Each case's inputs as the workflow takes them: by name, and a plain ``input`` given to the workflow's one
    text input. A case naming an input the workflow lacks is refused, naming the case."""
    declared = set(spec.inputs)
    target = INPUT if INPUT in declared else (
        required[0] if len(required) == 1 else (sorted(declared)[0] if len(declared) == 1 else None))
    records = []
    for case in cases:
        record = dict(case.inputs)
        if INPUT in record and target is not None and target != INPUT and target not in record:
            record[target] = record.pop(INPUT)
        unknown = sorted(set(record) - declared)
        if unknown:
            raise BadTestSet(f"Case '{case.key}' gives input '{unknown[0]}', which the workflow does not declare "
                             f"(its inputs: {', '.join(sorted(declared)) or 'none'}); rename it in the test set.",
                             field="test_set")
        records.append(record)
    return records


def start(session: Session, *, workflow: str, version: int | None, test_set: str, revision: int | None,
          settings: MetricSettings, concurrency: int | None = None, reuse: bool = True) -> tuple[Evaluation, bool]:
    """An evaluation of ``workflow`` (version ``version``, default the newest) on ``test_set`` (revision, default
    the newest): one that matches (see ``reuse_key``), or a new one, committed with its job, which the caller
    then dispatches. Returns it and whether it was reused."""
    version_id = crud.get_version_id(session=session, ref=workflow, number=version)
    info = version_info(session, version_id)
    row = crud.get_version_by_id(session=session, version_id=version_id)
    test = testsets.get(session, test_set)
    pinned = testsets.revision(session, test, revision)
    generation = generations(session, info.spec)
    key = reuse_key(version_id, pinned.id, settings, generation, contents(session, sorted(generation)))
    if reuse and (found := reusable(session, key)) is not None:
        return found, True
    cases = list(session.exec(select(TestCase).where(TestCase.revision_id == pinned.id)
                              .order_by(col(TestCase.position))).all())
    rows = _records(info.spec, info.required, cases)
    records = ItemRecords(kind="jsonl", records=rows, summary={
        "type": "test_set", "test_set": test.name, "revision": pinned.number, "items": len(rows),
        "keys": sorted({name for row in rows for name in row})})
    job = jobs.create_job(session, source=records, version_id=version_id, concurrency=concurrency,
                          name=f"evaluation of {workflow} v{row.number} on {test.name} r{pinned.number}",
                          commit=False)
    evaluation = Evaluation(workflow_id=info.workflow_id, version_id=version_id, version=row.number,
                            test_set_id=test.id, revision_id=pinned.id, revision=pinned.number, job_id=job.id,
                            settings=settings.model_dump(), reuse_key=key, generations=generation)
    session.add(evaluation)
    session.commit()               # before its job is sent: a worker must find the rows
    return evaluation, False


def get(session: Session, evaluation_id: str) -> Evaluation:
    found = session.get(Evaluation, evaluation_id, populate_existing=True)
    if found is None:
        raise NotFound(f"No evaluation '{evaluation_id}'; list them with GET /api/v1/evaluations.")
    return found


def list_for(session: Session, *, workflow_id: str | None = None, test_set: TestSet | None = None,
             limit: int = 50) -> list[Evaluation]:
    query = select(Evaluation).order_by(col(Evaluation.created_at).desc()).limit(limit)
    if workflow_id:
        query = query.where(Evaluation.workflow_id == workflow_id)
    if test_set is not None:
        query = query.where(Evaluation.test_set_id == test_set.id)
    return list(session.exec(query).all())


MAX_SCORING_ATTEMPTS = 3


def due_for_scoring(session: Session, *, stale_before: datetime) -> list[str]:
    """Evaluations whose job is over and that nobody scores: running ones, and scoring ones whose scorer
    stopped beating before ``stale_before`` (it died). Those whose job was cancelled are cancelled here (their
    cases never ran: nothing to score, nothing to reuse); those whose scorer died ``MAX_SCORING_ATTEMPTS`` times
    fail, saying so."""
    over = (select(Evaluation.id, Job.state).join(Job, col(Job.id) == col(Evaluation.job_id))
            .where(col(Job.state).in_(jobs.JOB_TERMINAL)))
    waiting = session.exec(over.where(Evaluation.state == EvalState.RUNNING)).all()
    stuck = session.exec(over.where(Evaluation.state == EvalState.SCORING,
                                    col(Evaluation.heartbeat_at) < stale_before)).all()
    due = []
    for evaluation_id, job_state in [*waiting, *stuck]:
        if job_state == JobState.CANCELLED:
            transition(session, evaluation_id, EvalState.CANCELLED, error="its job was cancelled", commit=True)
        elif transition(session, evaluation_id, EvalState.FAILED, commit=True,
                        where=col(Evaluation.attempts) >= MAX_SCORING_ATTEMPTS,
                        error=f"scoring stopped {MAX_SCORING_ATTEMPTS} times (its worker died or it ran out of "
                              "memory); retry it, or score fewer cases at once") is None:
            due.append(evaluation_id)
    return due


def claim_scoring(session: Session, evaluation_id: str, *, stale_before: datetime) -> Evaluation | None:
    """Take the evaluation for scoring (committed: other scorers see it at once); None when it is not due. The
    claim's ``attempts`` fences the scorer: one that was presumed dead cannot write over a newer one."""
    return transition(session, evaluation_id, EvalState.SCORING,
                      where=(Evaluation.state == EvalState.RUNNING) | (col(Evaluation.heartbeat_at) < stale_before),
                      heartbeat_at=utcnow(), attempts=Evaluation.attempts + 1, commit=True)


def beat(session: Session, evaluation_id: str, attempt: int) -> bool:
    """Renew a scorer's claim; False when it no longer holds it (committed)."""
    moved = session.execute(update(Evaluation).where(col(Evaluation.id) == evaluation_id,
                                                     col(Evaluation.state) == EvalState.SCORING,
                                                     col(Evaluation.attempts) == attempt)
                            .values(heartbeat_at=utcnow())).rowcount
    session.commit()
    return bool(moved)


def scored(session: Session, evaluation_id: str, summary: dict[str, Any], attempt: int) -> Evaluation | None:
    """Done with ``summary``, if the scorer of claim ``attempt`` still holds it."""
    return transition(session, evaluation_id, EvalState.DONE, summary=summary, error=None,
                      where=col(Evaluation.attempts) == attempt)


def failed(session: Session, evaluation_id: str, error: str, *, attempt: int | None = None) -> Evaluation | None:
    """Failed with ``error`` (by the scorer of claim ``attempt``, when given, if it still holds it)."""
    return transition(session, evaluation_id, EvalState.FAILED, error=error[:2000],
                      where=None if attempt is None else col(Evaluation.attempts) == attempt)


def cancel(session: Session, evaluation: Evaluation) -> Evaluation:
    """Cancel a running evaluation and its job (cases already run stay)."""
    if evaluation.state != EvalState.RUNNING:
        raise BadTestSet(f"Evaluation '{evaluation.id}' is {evaluation.state.value}; only a running one can be "
                         "cancelled.", field="state")
    moved = transition(session, evaluation.id, EvalState.CANCELLED)
    if moved is None:
        raise BadTestSet(f"Evaluation '{evaluation.id}' finished meanwhile; only a running one can be cancelled.",
                         field="state")
    if evaluation.job_id:
        jobs.request_cancel(session, job_id=evaluation.job_id)
    return moved


def retry_failed(session: Session, evaluation: Evaluation) -> tuple[Evaluation, int]:
    """Run the evaluation's failed cases again; it is scored again when they are done."""
    if evaluation.job_id is None or evaluation.state not in (EvalState.DONE, EvalState.FAILED):
        raise BadTestSet(f"Evaluation '{evaluation.id}' is {evaluation.state.value}; failed cases run again once "
                         "it is done.", field="state")
    _, count = jobs.retry_failed(session, job_id=evaluation.job_id)
    moved = transition(session, evaluation.id, EvalState.RUNNING, finished_at=None, commit=True)
    return moved or evaluation, count


def heartbeat_due(lease_seconds: float) -> datetime:
    """Before this, a scorer that has not beaten is presumed dead."""
    return utcnow() - timedelta(seconds=lease_seconds)
