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
from jobs.models import JobItem
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
    with session_scope() as session:              # claimed by the worker that finished its last case
        assert lifecycle.get(session, evaluation_id).state == EvalState.SCORING
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
    lax = gate.model_copy(update={"thresholds": {}, "max_drop": {}, "error_budget": 1.0})
    with session_scope() as session, pytest.raises(GateFailed, match="already has a gate"):
        publish_checked(session, ref="faq-bot", slug="faq", version=2, given=given, check=False, gate=lax)
    with session_scope() as session, pytest.raises(GateFailed, match="did not pass the gate"):
        publish_checked(session, ref="faq-bot", slug="faq", version=2, given=given, check=False, override="   ")
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
    with session_scope() as session:                                # inputs by name or as the one 'input'
        mixed = testsets.revise(session, testsets.get(session, "faq"), replace=True, add=[
            CaseIn(inputs={"question": "ibex"}), CaseIn(inputs={"input": "otter"})])
        started, _ = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=mixed.number,
                                     settings=MetricSettings(metrics=["recall"]))
        items = session.exec(select(JobItem).where(JobItem.job_id == started.job_id)
                             .order_by(JobItem.item_index)).all()
        assert [i.inputs for i in items] == [{"question": "ibex"}, {"question": "otter"}]


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


def test_an_llm_judge_scores_faithfulness_and_its_garbage_counts_as_errors_the_gate_fails_on(
        facts, monkeypatch):
    import json

    from evaluations.gate import Gate, verdict
    from stackyard.settings import reset_settings_cache
    from tests.support.openai_server import ChatServer
    from worker import batch
    from worker import scoring as worker_scoring

    def judge(body: dict) -> str:          # garbage whenever the question is about the otter
        prompt = body["messages"][-1]["content"]
        if "otter" in prompt.rsplit("Inputs:", 1)[-1]:
            return "I refuse to answer in JSON."
        return json.dumps({"statements": ["It is a fact."], "statement_scores": [1],
                           "relevant_statements": ["It is a fact."]})

    spec = keyword_rag(5)                    # version 3: the documents found, written out as the answer
    spec["components"]["answer"] = {"type": "haystack.components.builders.prompt_builder.PromptBuilder",
                                    "init_parameters": {"template": "{% for d in documents %}{{ d.content }} "
                                                                    "{% endfor %}"}}
    spec["connections"] = [{"sender": "retriever.documents", "receiver": "answer.documents"}]
    spec["outputs"]["answer"] = spec["outputs"]["prompt"] = "answer.prompt"
    with session_scope() as session:
        crud.create_version(session, ref="faq-bot", spec=spec_from_dict(spec))
    with ChatServer(reply=judge) as server:
        monkeypatch.setenv("STACKYARD_FETCH_ALLOWED_HOSTS", f"127.0.0.1:{server.port}")
        reset_settings_cache()
        settings = MetricSettings(metrics=["faithfulness", "context_relevance"], answer_output="answer",
                                  judge={"model": "judge", "api_base_url": server.base_url})
        with session_scope() as session:
            judged, _ = lifecycle.start(session, workflow="faq-bot", version=3, test_set="faq", revision=None,
                                        settings=settings)
        scorer = worker_scoring.CaseScorer(linger=60)     # the workers' own, lingering: a queued case would stay
        monkeypatch.setattr(batch, "_case_scorer", scorer)
        run_items(judged.id, monkeypatch)
        assert len(server.requests) == 2 * 10          # each case judged once per metric
        assert scorer._pending == [] and scorer._thread is None   # judged by the worker that ran it: never twice
    with session_scope() as session:
        judged = lifecycle.get(session, judged.id)
        results = compare.results(session, judged)
        metrics = judged.summary["metrics"]
        assert metrics["faithfulness"] == {"mean": 1.0, "n": 8, "errors": 2}
        assert metrics["context_relevance"] == {"mean": 1.0, "n": 8, "errors": 2}
        assert "no usable verdict" in results["case-otter"].errors["faithfulness"]
        assert results["case-falcon"].prompt.startswith("The falcon fact.")     # what the run sent, kept
        lenient = Gate(test_set="faq", settings=settings, thresholds={"faithfulness": 0.9}, error_budget=0.25)
        strict = lenient.model_copy(update={"error_budget": 0.1})
        assert verdict(session, lenient, judged, None)["passed"]
        failed = verdict(session, strict, judged, None)
    assert not failed["passed"] and [c["metric"] for c in failed["checks"] if not c["passed"]] == ["errors"]
    with pytest.raises(ValueError, match="faithfulness need a judge"):
        MetricSettings(metrics=["faithfulness"])
    with pytest.raises(ValueError, match="Refused http://169.254.169.254/v1: .* is not a public address"):
        MetricSettings(metrics=["faithfulness"], judge={"model": "j", "api_base_url": "http://169.254.169.254/v1"})


def test_a_scorer_presumed_dead_writes_nothing_over_the_one_that_replaced_it(facts, monkeypatch):
    from datetime import timedelta

    from store.clock import utcnow

    with session_scope() as session:
        evaluation, _ = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=None,
                                        settings=MetricSettings(metrics=["recall"]))
    original = scoring.summarise

    def claimed_again_meanwhile(runs, latencies, settings):   # the reaper took it back while this scorer worked
        with session_scope() as session:
            assert lifecycle.due_for_scoring(session, stale_before=utcnow() + timedelta(seconds=1)) == [evaluation.id]
            assert lifecycle.claim_scoring(session, evaluation.id, stale_before=utcnow() + timedelta(seconds=1))
        return original(runs, latencies, settings)

    monkeypatch.setattr(scoring, "summarise", claimed_again_meanwhile)
    with pytest.raises(AssertionError):             # run_items scores once: this scorer lost its claim
        run_items(evaluation.id, monkeypatch)
    with session_scope() as session:
        assert (lifecycle.get(session, evaluation.id).state, compare.results(session, evaluation)) == (
            EvalState.SCORING, {})
    monkeypatch.setattr(scoring, "summarise", original)
    assert scoring.score(evaluation.id) == EvalState.DONE      # the newer claim's scorer writes
    with session_scope() as session:
        done = lifecycle.get(session, evaluation.id)
        assert (done.attempts, len(compare.results(session, done))) == (2, 10)


def test_each_case_is_scored_by_the_worker_that_ran_it_and_the_scorer_scores_the_rest_a_page_at_a_time(
        facts, monkeypatch):

    settings = MetricSettings(metrics=["recall", "mrr"])
    with session_scope() as session:
        whole, _ = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=None,
                                   settings=settings)
    run_items(whole.id, monkeypatch)
    with session_scope() as session:
        whole = lifecycle.get(session, whole.id)
        items = session.exec(select(JobItem).where(JobItem.job_id == whole.job_id)).all()
        scored_by_workers = {item.item_index: item.scores for item in items}
        expected = {key: (r.scores, r.errors) for key, r in compare.results(session, whole).items()}
    assert len(scored_by_workers) == 10 and all(s and set(s["scores"]) == {"recall", "mrr"}
                                                for s in scored_by_workers.values())
    assert sum(s["scores"]["recall"] for s in scored_by_workers.values()) == 9

    from worker import scoring as worker_scoring

    real = worker_scoring.score_finished
    monkeypatch.setattr(worker_scoring, "score_finished", lambda cases: (    # a worker that cannot score odd cases
        real([case for case in cases if case.item_index % 2 == 0])))
    monkeypatch.setattr(scoring, "PAGE", 3)       # 10 cases read in 4 pages
    with session_scope() as session:
        again, _ = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=None,
                                   settings=settings, reuse=False)
    run_items(again.id, monkeypatch)
    with session_scope() as session:
        again = lifecycle.get(session, again.id)
        unscored = [item.item_index for item in session.exec(select(JobItem).where(
            JobItem.job_id == again.job_id)).all() if item.scores is None]
        results = compare.results(session, again)
    assert sorted(unscored) == [1, 3, 5, 7, 9]
    assert {key: (r.scores, r.errors) for key, r in results.items()} == expected
    assert [r.position for r in sorted(results.values(), key=lambda r: r.position)] == list(range(10))
    assert again.summary["metrics"] == whole.summary["metrics"]


def test_a_worker_scores_its_cases_in_batches_and_never_over_a_later_attempt(facts, monkeypatch):
    from worker import batch
    from worker import scoring as worker_scoring

    sizes: list[int] = []
    real = worker_scoring.score_finished
    monkeypatch.setattr(worker_scoring, "score_finished", lambda cases: sizes.append(len(cases)) or real(cases))
    monkeypatch.setattr(batch, "_case_scorer", worker_scoring.CaseScorer(batch=4, linger=60))
    with session_scope() as session:
        evaluation, _ = lifecycle.start(session, workflow="faq-bot", version=1, test_set="faq", revision=None,
                                        settings=MetricSettings(metrics=["recall"]))
    run_items(evaluation.id, monkeypatch)
    with session_scope() as session:
        evaluation = lifecycle.get(session, evaluation.id)
        items = session.exec(select(JobItem).where(JobItem.job_id == evaluation.job_id)).all()
    assert sum(sizes) == 10 and max(sizes) == 4 and len(sizes) <= 4, sizes    # batches of 4; the job's end flushes
    assert all(item.scores and "recall" in item.scores["scores"] for item in items)
    assert evaluation.summary["metrics"]["recall"]["mean"] == pytest.approx(0.9)

    item = items[0]
    old = scoring.FinishedCase(evaluation.job_id, item.id, item.item_index, item.attempts - 1, item.outputs)
    assert scoring.score_finished([old]) == 0          # an attempt taken back writes nothing
    other = scoring.FinishedCase(evaluation.job_id, items[1].id, item.item_index, item.attempts, item.outputs)
    assert scoring.score_finished([other]) == 0        # nor a case whose id is now another item's
    assert scoring.score_finished([old.__class__(**{**old.__dict__, "attempt": item.attempts})]) == 1

    full = worker_scoring.CaseScorer(linger=60, limit=2)
    assert [full.add(old) for _ in range(3)] == [True, True, False]     # the evaluation's scorer takes the third
    assert full.flush(timeout=60)
