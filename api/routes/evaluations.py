"""Test sets (created, added to, imported from CSV/JSONL or a knowledge base's retrieval tests; every change a new
revision) and evaluations (a pinned version over a pinned revision on the workers, scored; compared case by
case)."""

from __future__ import annotations

from fastapi import APIRouter, Query, Request, Response, status
from sqlmodel import Session, col, func, select
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.errors import RequestTooLarge
from api.openapi import BODY, WRITE, errors, request_body
from api.schemas.evaluations import (
    CasePage,
    CasesAdd,
    EvaluationCreate,
    EvaluationPublic,
    FromKnowledge,
    RevisionPublic,
    TestSetCreate,
    TestSetPublic,
)
from evaluations import compare as comparing
from evaluations import lifecycle, testsets
from evaluations.importing import MAX_IMPORT_BYTES, BadTestSet, parse
from evaluations.models import EvalResult, Evaluation, TestSet
from jobs import lifecycle as jobs
from jobs.models import Job
from knowledge import bases, queries
from store.db import session_scope
from worker import batch
from workflows.bounds import INT32_MAX, Text

router = APIRouter(prefix="/api/v1", tags=["evaluations"], route_class=LimitedRoute, responses=errors(400, 401, 429))


def test_set_public(session: Session, test_set: TestSet, *, with_revisions: bool = False) -> TestSetPublic:
    revisions = testsets.revisions(session, test_set)
    return TestSetPublic(name=test_set.name, description=test_set.description, revision=test_set.revision,
                         case_count=revisions[0].case_count if revisions else 0, updated_at=test_set.updated_at,
                         revisions=[RevisionPublic(**r.model_dump()) for r in revisions] if with_revisions else [])


@router.get("/test-sets", response_model=list[TestSetPublic])
def list_test_sets(session: SessionDep) -> list[TestSetPublic]:
    return [test_set_public(session, t) for t in testsets.list_all(session)]


@router.post("/test-sets", response_model=TestSetPublic, status_code=status.HTTP_201_CREATED,
             responses=errors(*BODY, 409))
def create_test_set(body: TestSetCreate, session: SessionDep) -> TestSetPublic:
    """A test set with its first revision; more cases at once with ``POST /test-sets/{name}/import``."""
    made = testsets.create(session, name=body.name, description=body.description, cases=body.cases)
    return test_set_public(session, made, with_revisions=True)


@router.get("/test-sets/{name}", response_model=TestSetPublic, responses=errors(404, 422))
def get_test_set(name: Text, session: SessionDep) -> TestSetPublic:
    return test_set_public(session, testsets.get(session, name), with_revisions=True)


@router.delete("/test-sets/{name}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(*WRITE, 404, 409, 422))
def delete_test_set(name: Text, session: SessionDep) -> Response:
    """The test set, its revisions and the evaluations run on them."""
    session.delete(testsets.get(session, name))
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/test-sets/{name}/cases", response_model=CasePage, responses=errors(404, 422))
def list_cases(name: Text, session: SessionDep, revision: int | None = Query(default=None, ge=1, le=INT32_MAX),
               offset: int = Query(default=0, ge=0, le=INT32_MAX),
               limit: int = Query(default=100, ge=1, le=500)) -> CasePage:
    """A page of a revision's cases (default: the newest), in order."""
    pinned = testsets.revision(session, testsets.get(session, name), revision)
    page = testsets.cases(session, pinned, offset=offset, limit=limit)
    return CasePage(revision=pinned.number, total=pinned.case_count, cases=[testsets.case_public(c) for c in page])


@router.post("/test-sets/{name}/cases", response_model=RevisionPublic, status_code=status.HTTP_201_CREATED,
             responses=errors(*BODY, 404, 409))
def add_cases(name: Text, body: CasesAdd, session: SessionDep) -> RevisionPublic:
    """The next revision: the cases added (one with the key of an existing case replaces it)."""
    made = testsets.revise(session, testsets.get(session, name), add=body.cases, note=body.note or "cases added")
    return RevisionPublic(**made.model_dump())


@router.delete("/test-sets/{name}/cases/{key}", response_model=RevisionPublic,
               responses=errors(*WRITE, 404, 409, 422))
def remove_case(name: Text, key: Text, session: SessionDep) -> RevisionPublic:
    """The next revision, without case ``key``."""
    made = testsets.revise(session, testsets.get(session, name), remove=[key], note=f"case {key} removed")
    return RevisionPublic(**made.model_dump())


_IMPORT = {"text/csv": {"schema": {"type": "string"}}, "application/x-ndjson": {"schema": {"type": "string"}}}


@router.post("/test-sets/{name}/import", response_model=RevisionPublic, status_code=status.HTTP_201_CREATED,
             responses=errors(*BODY, 404, 409), openapi_extra=request_body(_IMPORT))
async def import_cases(name: Text, request: Request, format: str = Query(default="csv", pattern="^(csv|jsonl)$"),
                       replace: bool = Query(default=False, description="The revision holds only these cases"),
                       description: str = Query(default="", max_length=2000)) -> RevisionPublic:
    """Cases from CSV or JSONL in the body (up to 50 MB, 100,000 cases), read and checked before anything is
    stored: the first bad line is refused, naming it. Creates the test set when there is none."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            raise RequestTooLarge(f"The import is over {MAX_IMPORT_BYTES:,} bytes; split it into several.")
        chunks.append(chunk)
    return await run_in_threadpool(_import, name, chunks, format, replace, description)


def _import(name: str, chunks: list[bytes], kind: str, replace: bool, description: str) -> RevisionPublic:
    """Decoded, parsed and stored off the event loop: 50 MB of CSV takes seconds."""
    try:
        text = b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        raise BadTestSet("The body is not UTF-8 text; save the file as UTF-8.", field="data") from None
    chunks.clear()
    cases = parse(text, kind)
    with session_scope() as session:
        made = testsets.add(session, name, cases, replace=replace, note=f"imported {len(cases)} case(s)",
                            description=description)
        return RevisionPublic(**made.model_dump())


@router.post("/test-sets/{name}/from-knowledge", response_model=RevisionPublic, status_code=status.HTTP_201_CREATED,
             responses=errors(*BODY, 404, 409))
def from_knowledge(name: Text, body: FromKnowledge, session: SessionDep) -> RevisionPublic:
    """Cases from a knowledge base's retrieval tests kept as test cases (the query, its expected sources)."""
    base = bases.get(session, body.knowledge_base)
    cases = testsets.from_queries(session, queries.kept_as_cases(session, base, body.query_ids))
    made = testsets.add(session, name, cases, note=f"from knowledge base {base.name}",
                        description=f"from knowledge base {base.name}")
    return RevisionPublic(**made.model_dump())


def evaluation_public(session: Session, evaluation: Evaluation, *, reused: bool = False) -> EvaluationPublic:
    test_set = session.get(TestSet, evaluation.test_set_id)
    progress = {}
    if evaluation.job_id and (job := session.get(Job, evaluation.job_id)) is not None:
        progress = {"total": job.total, **jobs.progress(session=session, jobs=[job])[job.id].counts}
    return EvaluationPublic(**evaluation.model_dump(exclude={"state"}), state=evaluation.state.value,
                            test_set=test_set.name if test_set else "?", progress=progress, reused=reused)


@router.post("/evaluations", response_model=EvaluationPublic, status_code=status.HTTP_202_ACCEPTED,
             responses=errors(*BODY, 404, 409))
def create_evaluation(body: EvaluationCreate, session: SessionDep) -> EvaluationPublic:
    """Run a version over a test-set revision on the workers (a batch job), then score it; answered at once
    (follow it with GET). A matching finished or running evaluation is answered instead (``reuse``)."""
    evaluation, reused = lifecycle.start(session, workflow=body.workflow, version=body.version,
                                         test_set=body.test_set, revision=body.revision, settings=body.settings,
                                         concurrency=body.concurrency, reuse=body.reuse)
    if not reused and evaluation.job_id:
        batch.dispatch(evaluation.job_id)
    return evaluation_public(session, evaluation, reused=reused)


@router.get("/evaluations", response_model=list[EvaluationPublic], responses=errors(404, 422))
def list_evaluations(session: SessionDep, workflow: Text | None = None, test_set: Text | None = None,
                     limit: int = Query(default=50, ge=1, le=500)) -> list[EvaluationPublic]:
    from workflows import crud

    workflow_id = crud.get_workflow(session=session, ref=workflow).id if workflow else None
    chosen = testsets.get(session, test_set) if test_set else None
    return [evaluation_public(session, e) for e in lifecycle.list_for(session, workflow_id=workflow_id,
                                                                     test_set=chosen, limit=limit)]


@router.get("/evaluations/compare", responses=errors(404, 422))
def compare_evaluations(session: SessionDep, a: Text = Query(description="The baseline evaluation"),
                        b: Text = Query(description="The evaluation compared with it")) -> dict:
    """``b`` against ``a``, case by case: per-metric deltas with a sign test, the cases that got worse first."""
    return comparing.compare(session, lifecycle.get(session, a), lifecycle.get(session, b))


@router.get("/evaluations/{evaluation_id}", response_model=EvaluationPublic, responses=errors(404, 422))
def get_evaluation(evaluation_id: Text, session: SessionDep) -> EvaluationPublic:
    return evaluation_public(session, lifecycle.get(session, evaluation_id))


@router.get("/evaluations/{evaluation_id}/results", responses=errors(404, 422))
def evaluation_results(evaluation_id: Text, session: SessionDep, offset: int = Query(default=0, ge=0, le=INT32_MAX),
                       limit: int = Query(default=100, ge=1, le=500), failed: bool = False) -> dict:
    """A page of the evaluation's results, one per case, in the test set's order (``failed``: failed runs only)."""
    evaluation = lifecycle.get(session, evaluation_id)
    where = [EvalResult.evaluation_id == evaluation.id, *([col(EvalResult.succeeded).is_(False)] if failed else [])]
    total = session.exec(select(func.count()).select_from(EvalResult).where(*where)).one()
    rows = session.exec(select(EvalResult).where(*where).order_by(col(EvalResult.position))
                        .offset(offset).limit(limit)).all()
    inputs = testsets.cases_by_key(session, evaluation.revision_id, [r.case_key for r in rows])
    return {"total": total, "results": [{**r.model_dump(exclude={"id", "evaluation_id"}),
                                         "inputs": inputs[r.case_key].inputs if r.case_key in inputs else None,
                                         "expected_answer": inputs[r.case_key].expected_answer
                                         if r.case_key in inputs else None} for r in rows]}


@router.post("/evaluations/{evaluation_id}/cancel", response_model=EvaluationPublic,
             responses=errors(*WRITE, 404, 409, 422))
def cancel_evaluation(evaluation_id: Text, session: SessionDep) -> EvaluationPublic:
    return evaluation_public(session, lifecycle.cancel(session, lifecycle.get(session, evaluation_id)))


@router.post("/evaluations/{evaluation_id}/retry", response_model=EvaluationPublic,
             responses=errors(*WRITE, 404, 409, 422))
def retry_evaluation(evaluation_id: Text, session: SessionDep) -> EvaluationPublic:
    """Run the failed cases again; the evaluation is scored again when they are done."""
    evaluation, _ = lifecycle.retry_failed(session, lifecycle.get(session, evaluation_id))
    if evaluation.job_id:
        batch.dispatch(evaluation.job_id)
    return evaluation_public(session, evaluation)
