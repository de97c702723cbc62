"""An evaluation's life: created with its batch job (one item per case, the workers' fan-out, throttling and crash
safety), scored once the job is over, done. Every move of ``Evaluation.state`` is here.

running ──(job over, a worker claims it)──▶ scoring ──▶ done | failed
running ──(cancel)──▶ cancelled

A finished evaluation is reused when version, test-set revision, metric settings and the knowledge-base index
generations its workflow reads all match (``reuse_key``).
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from evaluations import testsets
from evaluations.importing import INPUT, BadTestSet
from evaluations.metrics import MetricSettings
from evaluations.models import EvalState, Evaluation, TestCase, TestSet
from jobs import lifecycle as jobs
from jobs.models import Job
from jobs.sources import ItemRecords
from knowledge.bases import get as knowledge_base
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


def reuse_key(version_id: str, revision_id: str, settings: MetricSettings, generation: dict[str, int]) -> str:
    text = json.dumps([version_id, revision_id, settings.model_dump(), generation], sort_keys=True)
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


def _input_mapping(spec: Any, required: list[str], cases: list[TestCase]) -> dict[str, str]:
    """Where each case input goes: by name, and a plain ``input`` to the workflow's one text input. A case
    naming an input the workflow lacks is refused, naming the case."""
    declared = set(spec.inputs)
    mapping = {name: name for name in declared}
    if INPUT not in declared:
        target = required[0] if len(required) == 1 else (sorted(declared)[0] if len(declared) == 1 else None)
        if target is not None:
            mapping[target] = INPUT
    fed = set(mapping.values())
    for case in cases:
        unknown = sorted(set(case.inputs) - fed)
        if unknown:
            raise BadTestSet(f"Case '{case.key}' gives input '{unknown[0]}', which the workflow does not declare "
                             f"(its inputs: {', '.join(sorted(declared)) or 'none'}); rename it in the test set.",
                             field="test_set")
    return mapping


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
    key = reuse_key(version_id, pinned.id, settings, generation)
    if reuse and (found := reusable(session, key)) is not None:
        return found, True
    cases = list(session.exec(select(TestCase).where(TestCase.revision_id == pinned.id)
                              .order_by(col(TestCase.position))).all())
    mapping = _input_mapping(info.spec, info.required, cases)
    records = ItemRecords(kind="jsonl", records=[dict(case.inputs) for case in cases],
                          summary={"type": "test_set", "test_set": test.name, "revision": pinned.number,
                                   "items": len(cases), "keys": sorted({k for c in cases for k in c.inputs})})
    job = jobs.create_job(session, source=records, version_id=version_id, mapping=mapping, concurrency=concurrency,
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


def due_for_scoring(session: Session, *, stale_before: datetime) -> list[str]:
    """Evaluations whose job is over and that nobody scores: running ones, and scoring ones whose scorer
    stopped beating before ``stale_before`` (it died)."""
    over = select(Evaluation.id).join(Job, col(Job.id) == col(Evaluation.job_id)).where(col(Job.state).in_(jobs.JOB_TERMINAL))
    waiting = session.exec(over.where(Evaluation.state == EvalState.RUNNING)).all()
    stuck = session.exec(over.where(Evaluation.state == EvalState.SCORING,
                                    col(Evaluation.heartbeat_at) < stale_before)).all()
    return [*waiting, *stuck]


def claim_scoring(session: Session, evaluation_id: str, *, stale_before: datetime) -> Evaluation | None:
    """Take the evaluation for scoring (committed: other scorers see it at once); None when it is not due."""
    claimed = transition(session, evaluation_id, EvalState.SCORING,
                         where=(Evaluation.state == EvalState.RUNNING) | (col(Evaluation.heartbeat_at) < stale_before),
                         heartbeat_at=utcnow(), attempts=Evaluation.attempts + 1, commit=True)
    return claimed


def scored(session: Session, evaluation_id: str, summary: dict[str, Any]) -> Evaluation | None:
    return transition(session, evaluation_id, EvalState.DONE, summary=summary, error=None)


def failed(session: Session, evaluation_id: str, error: str) -> Evaluation | None:
    return transition(session, evaluation_id, EvalState.FAILED, error=error[:2000])


def cancel(session: Session, evaluation: Evaluation) -> Evaluation:
    """Cancel a running evaluation and its job (cases already run stay)."""
    if evaluation.job_id:
        jobs.request_cancel(session, job_id=evaluation.job_id)
    moved = transition(session, evaluation.id, EvalState.CANCELLED)
    if moved is None:
        raise BadTestSet(f"Evaluation '{evaluation.id}' is {evaluation.state.value}; only a running one can be "
                         "cancelled.", field="state")
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
