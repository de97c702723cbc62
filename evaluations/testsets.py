"""Test sets: created with their first revision, changed only by writing the next one (an evaluation pins a
revision, so what it was scored on never changes under it).

Example::

    test_set = create(session, name="faq", cases=parse(csv_text, "csv"))
    revise(session, test_set, add=[CaseIn(inputs={"input": "Who?"})], note="one more")   # revision 2
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from sqlalchemy import delete, func, insert, literal
from sqlalchemy import select as sql_select
from sqlmodel import Session, col, select

from evaluations.importing import MAX_CASES, BadTestSet, CaseIn
from evaluations.models import TestCase, TestSet, TestSetRevision
from stackyard.errors import Conflict, NotFound
from store.clock import utcnow
from store.db import race_safe

INSERT_BATCH = 1000


def get(session: Session, name: str) -> TestSet:
    found = session.exec(select(TestSet).where(TestSet.name == name)).first()
    if found is None:
        raise NotFound(f"No test set '{name}'; list them with GET /api/v1/test-sets.")
    return found


def list_all(session: Session) -> list[TestSet]:
    return list(session.exec(select(TestSet).order_by(col(TestSet.name))).all())


def revision(session: Session, test_set: TestSet, number: int | None = None) -> TestSetRevision:
    """Revision ``number`` of the set (default: the newest)."""
    wanted = number or test_set.revision
    found = session.exec(select(TestSetRevision).where(TestSetRevision.test_set_id == test_set.id,
                                                       TestSetRevision.number == wanted)).first()
    if found is None:
        raise NotFound(f"Test set '{test_set.name}' has no revision {wanted}; it has 1 to {test_set.revision}.")
    return found


def revisions(session: Session, test_set: TestSet) -> list[TestSetRevision]:
    return list(session.exec(select(TestSetRevision).where(TestSetRevision.test_set_id == test_set.id)
                             .order_by(col(TestSetRevision.number).desc())).all())


NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def create(session: Session, *, name: str, description: str = "", cases: list[CaseIn]) -> TestSet:
    """A new test set whose revision 1 holds ``cases``."""
    if not NAME.match(name):
        raise BadTestSet(f"Test set name '{name[:120]}' must be 1-100 letters, digits, '.', '_' or '-', starting "
                         "with a letter or digit (e.g. faq-2026).", field="name")
    if len(description) > 2000:
        raise BadTestSet("description is at most 2,000 characters.", field="description")
    if not cases:
        raise BadTestSet("A test set needs at least one case: give cases, or import a CSV or JSONL.", field="cases")
    test_set = TestSet(name=name, description=description)

    def write() -> TestSet:
        if session.exec(select(TestSet.id).where(TestSet.name == name)).first():
            raise Conflict(f"A test set named '{name}' exists; pick another name, or add cases to it.", field="name")
        session.add(test_set)
        session.flush()
        _write_revision(session, test_set, cases, note="created")
        return test_set

    return race_safe(session, write, what=f"Creating test set '{name}'")


def revise(session: Session, test_set: TestSet, *, add: list[CaseIn] | None = None, remove: list[str] | None = None,
           replace: bool = False, note: str = "") -> TestSetRevision:
    """The next revision: the newest one's cases (none with ``replace``) less ``remove`` (case keys), with
    ``add`` appended; a case added under a key the set has replaces that case."""
    add, remove = add or [], set(remove or [])

    def write() -> TestSetRevision:
        locked = session.exec(select(TestSet).where(TestSet.id == test_set.id).with_for_update()).first()
        if locked is None:
            raise NotFound(f"Test set '{test_set.name}' was deleted; nothing was changed.")
        current = None if replace or not locked.revision else revision(session, locked)
        keys = set() if current is None else set(session.exec(select(TestCase.key).where(
            TestCase.revision_id == current.id)).all())
        missing = sorted(remove - keys)
        if missing:
            raise BadTestSet(f"No case {', '.join(missing[:5])} in test set '{locked.name}'; list its cases to "
                             "pick.", field="remove")
        kept = keys - remove - {case.key for case in add if case.key}
        if len(kept) + len(add) > MAX_CASES:
            raise BadTestSet(f"A test set holds at most {MAX_CASES:,} cases; this would make "
                             f"{len(kept) + len(add):,}.", field="cases")
        if not kept and not add:
            raise BadTestSet("That would leave the test set with no case; add one, or delete the set.",
                             field="remove")
        return _write_revision(session, locked, add, note=note, copy_from=current, drop=keys - kept,
                               kept=kept)

    return race_safe(session, write, what=f"Changing test set '{test_set.name}'")


def add(session: Session, name: str, cases: list[CaseIn], *, replace: bool = False, note: str = "",
        description: str = "") -> TestSetRevision:
    """``cases`` into test set ``name``: its next revision (only them with ``replace``), or revision 1 of a new
    set named so when there is none."""
    try:
        test_set = get(session, name)
    except NotFound:
        return revision(session, create(session, name=name, description=description, cases=cases))
    return revise(session, test_set, add=cases, replace=replace, note=note)


def cases_by_key(session: Session, revision_id: str, keys: list[str]) -> dict[str, TestCase]:
    """The revision's cases with these keys, by key."""
    if not keys:
        return {}
    return {case.key: case for case in session.exec(select(TestCase).where(
        TestCase.revision_id == revision_id, col(TestCase.key).in_(keys))).all()}


def _write_revision(session: Session, test_set: TestSet, cases: list[CaseIn], *, note: str,
                    copy_from: TestSetRevision | None = None, drop: set[str] | None = None,
                    kept: set[str] | None = None) -> TestSetRevision:
    number = test_set.revision + 1
    made = TestSetRevision(test_set_id=test_set.id, number=number, note=note[:500])
    session.add(made)
    session.flush()
    table, start = TestCase.__table__, 0
    if copy_from is not None:                  # copied in SQL: 100,000 cases are not read into memory
        columns = ("key", "position", "inputs", "expected_answer", "expected_sources", "tags")
        session.execute(insert(table).from_select(("revision_id", *columns), sql_select(
            literal(made.id), *(table.c[name] for name in columns)).where(table.c.revision_id == copy_from.id)))
        gone = sorted(drop or ())
        for first in range(0, len(gone), INSERT_BATCH):
            session.execute(delete(table).where(table.c.revision_id == made.id,
                                                table.c.key.in_(gone[first:first + INSERT_BATCH])))
        start = 1 + (session.execute(sql_select(func.max(table.c.position)).where(
            table.c.revision_id == made.id)).scalar() or 0)
    kept = kept or set()
    given = [case.key for case in cases if case.key]
    repeated = sorted(key for key, times in Counter(given).items() if times > 1)
    if repeated:
        raise BadTestSet(f"Case key '{repeated[0]}' appears twice; each case needs its own id.", field="cases")
    taken, counter = set(given), start
    rows = []
    for offset, case in enumerate(cases):
        key = case.key
        while key is None or (not case.key and (key in taken or key in kept)):
            counter += 1
            key = f"case-{number}-{counter}"     # made keys skip every key the revision holds
        taken.add(key)
        rows.append({"revision_id": made.id, "key": key, "position": start + offset, "inputs": case.inputs,
                     "expected_answer": case.expected_answer, "tags": case.tags,
                     "expected_sources": [s.model_dump() for s in case.expected_sources]})
    for first in range(0, len(rows), INSERT_BATCH):
        session.execute(insert(TestCase), rows[first:first + INSERT_BATCH])
    made.case_count = len(kept) + len(rows)
    test_set.revision, test_set.updated_at = number, utcnow()
    session.add(test_set)
    session.flush()
    return made


def cases(session: Session, revision_row: TestSetRevision, *, offset: int = 0, limit: int = 100) -> list[TestCase]:
    """A page of the revision's cases in order."""
    return list(session.exec(select(TestCase).where(TestCase.revision_id == revision_row.id)
                             .order_by(col(TestCase.position)).offset(offset).limit(limit)).all())


def case_public(case: TestCase) -> dict[str, Any]:
    return {"key": case.key, "position": case.position, "inputs": case.inputs,
            "expected_answer": case.expected_answer, "expected_sources": case.expected_sources, "tags": case.tags}


def from_queries(session: Session, queries: list[Any]) -> list[CaseIn]:
    """Cases from a knowledge base's retrieval tests kept as test cases (``knowledge.queries.save_case``): the
    query as input, its expected sources as they were saved."""
    made = []
    for query in queries:
        if not query.expected:
            continue
        made.append(CaseIn(key=f"kbq-{query.id[:12]}", inputs={"input": query.query},
                           expected_sources=[{k: s.get(k) for k in ("document_id", "document", "snippet")
                                              if s.get(k) is not None} for s in query.expected],
                           tags=["retrieval-test"]))
    if not made:
        raise BadTestSet("None of these retrieval tests was kept as a test case; keep some on /knowledge (Keep as "
                         "test case) first.", field="query_ids")
    return made
