"""Evaluations end to end in this process on PostgreSQL, milvus-lite and real BM25 retrieval: version A retrieves
the right chunk for 9 of 10 cases and version B (top 1 instead of top 5) for 5, so recall is 0.9 and 0.5; the
comparison lists the 4 cases B lost (aligned by case id); the gate refuses switching an app from A to B and allows
B to A; test sets change only by new revisions; a finished evaluation is reused. Job items are executed by
calling the worker's function here; ``tests/worker`` runs the same on real worker processes."""

from __future__ import annotations

import pytest
from sqlmodel import select

from evaluations import compare, lifecycle, scoring, testsets
from evaluations.importing import BadTestSet, CaseIn, parse
from evaluations.metrics import MetricSettings
from evaluations.models import EvalState, TestCase
from knowledge import bases
from knowledge.documents import text_source
from knowledge.indexing import index_document
from knowledge.settings import Chunking
from stackyard.settings import get_settings
from store.db import session_scope
from tests.support.evaluations import DECOYED, TOPICS, facts_cases, keyword_rag
from workflows import crud
from workflows.spec import spec_from_dict

pytestmark = [pytest.mark.integration, pytest.mark.parametrize("database", ["postgresql"], indirect=True)]

def run_items(evaluation_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What the workers do: each case's job item as it is sent, then the scoring."""
    from worker import batch

    sent: list[int] = []
    monkeypatch.setattr(batch, "_send", lambda plan, item_id, countdown: sent.append(item_id))
    with session_scope() as session:
        job_id = lifecycle.get(session, evaluation_id).job_id
    batch.dispatch(job_id)
    while sent:
        batch.execute_item(sent.pop(0), worker="test")
    with session_scope() as session:
        assert evaluation_id in lifecycle.due_for_scoring(session, stale_before=lifecycle.heartbeat_due(60))
        assert lifecycle.claim_scoring(session, evaluation_id, stale_before=lifecycle.heartbeat_due(60))
    assert scoring.score(evaluation_id) == EvalState.DONE


@pytest.fixture
def facts(database, milvus) -> dict[str, str]:
    settings = get_settings()
    with session_scope() as session:
        base = bases.create(session, settings, name="facts", chunking=Chunking(length=50, overlap=0))
        added = bases.add_documents(session, base, [text_source(t, f"The {t} fact.") for t in TOPICS] +
                                    [text_source("decoy", " ".join(["decoy"] * 6))])
        ids = {d.name: d.id for d in added.added}
    for document_id in ids.values():
        index_document(document_id)
    with session_scope() as session:
        crud.create_workflow(session, name="faq-bot", spec=spec_from_dict(keyword_rag(5)))   # version 1: A
        crud.create_version(session, ref="faq-bot", spec=spec_from_dict(keyword_rag(1)))     # version 2: B
        testsets.create(session, name="faq", cases=facts_cases(ids))
    return ids


def test_recall_compares_two_versions_case_by_case_and_the_gate_guards_the_switch(facts, monkeypatch):
    from apps.checks import publish_checked
    from apps.gating import GateFailed, GatePending
    from evaluations.gate import Gate

    with session_scope() as session:
        a, reused = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=None,
                                    settings=MetricSettings(metrics=["recall", "mrr"]))
    assert not reused and a.state == EvalState.RUNNING
    run_items(a.id, monkeypatch)
    with session_scope() as session:
        b, _ = lifecycle.start(session, workflow="faq-bot", version=2, test_set="faq", revision=None,
                               settings=MetricSettings(metrics=["recall", "mrr"]))
    run_items(b.id, monkeypatch)
    with session_scope() as session:
        a, b = lifecycle.get(session, a.id), lifecycle.get(session, b.id)
        report = compare.compare(session, a, b)
    assert a.summary["metrics"]["recall"] == {"mean": 0.9, "n": 10, "errors": 0}
    assert a.summary["unknown_sources"] == []
    assert b.summary["metrics"]["recall"]["mean"] == 0.5
    assert sorted(report["worse"]) == sorted(f"case-{t}" for t in DECOYED)
    assert report["metrics"]["recall"]["worse"] == 4 and report["metrics"]["recall"]["better"] == 0
    assert report["metrics"]["recall"]["p_value"] == pytest.approx(0.125)
    lost = report["cases"][0]
    assert lost["a"]["documents"][1]["document_id"] == facts[lost["key"].removeprefix("case-")]
    assert [d["document_id"] for d in lost["b"]["documents"]] == [facts["decoy"]]

    with session_scope() as session:              # the same version, revision and settings: reused
        again, reused = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=None,
                                        settings=MetricSettings(metrics=["recall", "mrr"]))
    assert (again.id, reused) == (a.id, True)

    gate = Gate(test_set="faq", settings=MetricSettings(metrics=["recall", "mrr"]), thresholds={"recall": 0.8},
                max_drop={"mrr": 0.1})
    given = {"message": "question", "history": None, "reply": "documents", "sources": None}
    with session_scope() as session:
        live, _ = publish_checked(session, ref="faq-bot", slug="faq", version=1, given=given, check=False,
                                  gate=gate)
    assert live.gate_result["passed"] and live.gate_result["evaluation"] == a.id
    with session_scope() as session, pytest.raises(GateFailed, match=r"recall ≥ 0.8: 0.500") as refused:
        publish_checked(session, ref="faq-bot", slug="faq", version=2, given=given, check=False)
    failing = {c["metric"]: c for c in refused.value.report["checks"] if not c["passed"]}
    assert set(failing) == {"recall", "mrr"} and failing["mrr"]["live"] == pytest.approx(a.summary["metrics"]["mrr"]["mean"])
    with session_scope() as session:              # an admin switches anyway, with a reason kept
        switched, _ = publish_checked(session, ref="faq-bot", slug="faq", version=2, given=given, check=False,
                                      override="hotfix while the index is rebuilt")
    assert switched.gate_result["override"] == "hotfix while the index is rebuilt"
    with session_scope() as session:              # B → A passes
        back, _ = publish_checked(session, ref="faq-bot", slug="faq", version=1, given=given, check=False)
    assert back.gate_result["passed"] and back.gate_result["live_evaluation"] == b.id

    with session_scope() as session:              # a new revision is another test: the gate waits for it
        testsets.revise(session, testsets.get(session, "faq"), add=[CaseIn(inputs={"input": "ibex"})])
    with session_scope() as session:
        waiting, _ = publish_checked(session, ref="faq-bot", slug="faq", version=1, given=given, check=False)
    assert isinstance(waiting, GatePending) and [e.revision for e in waiting.evaluations] == [2]


def test_test_sets_change_by_revisions_and_bad_cases_are_refused_before_anything_runs(facts, monkeypatch):
    with session_scope() as session:
        test_set = testsets.get(session, "faq")
        second = testsets.revise(session, test_set, remove=["case-otter"],
                                 add=[CaseIn(key="case-falcon", inputs={"input": "falcon again"})], note="edit")
        assert (second.number, second.case_count) == (2, 9)
        first = testsets.revision(session, test_set, 1)
        assert first.case_count == 10 and len(testsets.cases(session, first, limit=500)) == 10   # unchanged
        keys = [c.key for c in testsets.cases(session, second)]
        assert "case-otter" not in keys and keys[-1] == "case-falcon" and len(keys) == 9
        with pytest.raises(BadTestSet, match="No case case-nope"):
            testsets.revise(session, test_set, remove=["case-nope"])
        third = testsets.revise(session, test_set, add=parse('{"inputs": {"questoin": "typo"}}\n', "jsonl"))
        fourth = testsets.revise(session, test_set, replace=True, add=parse(
            '{"id": "gone", "input": "otter", "expected_document_ids": ["no-such-document"]}\n', "jsonl"))
    with session_scope() as session, pytest.raises(BadTestSet, match="gives input 'questoin', which the workflow "
                                                                     "does not declare"):
        lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=third.number,
                        settings=MetricSettings())
    with session_scope() as session:
        assert lifecycle.list_for(session) == []                    # nothing half written
        assert session.exec(select(TestCase).where(TestCase.revision_id == third.id)).all()
    with session_scope() as session:                                # expected ids no document has: reported
        unfindable, _ = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq",
                                        revision=fourth.number, settings=MetricSettings(metrics=["recall"]))
    run_items(unfindable.id, monkeypatch)
    with session_scope() as session:
        done = lifecycle.get(session, unfindable.id)
        [result] = compare.results(session, done).values()
    assert done.summary["unknown_sources"] == ["gone"] and done.summary["metrics"]["recall"]["mean"] == 0.0
    assert result.errors == {"sources": "expected document(s) no-such-document are in no knowledge base"}


def test_a_hundred_thousand_cases_are_stored_and_revised_in_sql(database):
    from evaluations.importing import MAX_CASES

    text = "id,input\n" + "".join(f"c{n},question {n}\n" for n in range(MAX_CASES))
    cases = parse(text, "csv")
    with session_scope() as session:
        made = testsets.create(session, name="big", cases=cases)
    with session_scope() as session:
        revised = testsets.revise(session, testsets.get(session, "big"), remove=["c5"])
        page = testsets.cases(session, revised, offset=99_990, limit=50)
    assert (made.revision, revised.case_count, len(page), page[-1].key) == (1, MAX_CASES - 1, 9, "c99999")
    with session_scope() as session, pytest.raises(BadTestSet, match="at most 100,000 cases"):
        testsets.revise(session, testsets.get(session, "big"), add=[CaseIn(inputs={"input": "x"}),
                                                                    CaseIn(inputs={"input": "y"})])
