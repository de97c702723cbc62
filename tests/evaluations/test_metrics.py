"""Scoring with Haystack's evaluators: documents count as expected sources by document and gold snippet (labels
that survive re-chunking), the first k only; exact match after normalising; failures counted, not dropped."""

from __future__ import annotations

import pytest

from evaluations.compare import sign_test
from evaluations.metrics import CaseRun, MetricSettings, read_outputs, score_answers, score_retrieval, summarise


def doc(document_id: str, content: str) -> dict:
    return {"id": f"chunk-{content[:6]}", "content": content, "meta": {"kb_document_id": document_id}}


def test_retrieval_metrics_read_labels_by_document_and_snippet_within_k():
    expected = [{"document_id": "d1", "snippet": "the vault code is 4242"}]
    cases = [
        CaseRun("first", True, documents=[doc("d1", "The vault code is 4242, said the caretaker."), doc("d2", "x")],
                expected_sources=expected),
        CaseRun("second", True, documents=[doc("d2", "noise"), doc("d1", "the VAULT code is 4242")],
                expected_sources=expected),
        CaseRun("wrong-chunk", True, documents=[doc("d1", "the boiler room is downstairs")],
                expected_sources=expected),
        CaseRun("past-k", True, documents=[doc("d2", "a"), doc("d2", "b"), doc("d1", "vault code is 4242")],
                expected_sources=expected),
        CaseRun("unlabelled", True, documents=[doc("d1", "anything")]),
    ]
    settings = MetricSettings(k=2)
    score_retrieval(cases, settings)
    assert [c.scores.get("recall") for c in cases] == [1.0, 1.0, 0.0, 0.0, None]
    assert [c.scores.get("mrr") for c in cases[:4]] == [1.0, 0.5, 0.0, 0.0]
    by_document = [CaseRun("c", True, documents=[doc("d1", "the boiler room")], expected_sources=expected)]
    score_retrieval(by_document, MetricSettings(match="document"))
    assert by_document[0].scores["recall"] == 1.0       # any chunk of the document counts
    by_field = [CaseRun("c", True, documents=[{"id": "x", "content": "a", "meta": {"file_name": "b.md"}},
                                              {"id": "y", "content": "b", "meta": {"file_name": "a.md"}}],
                        expected_sources=[{"document_id": "d9", "meta": {"file_name": "a.md"}}])]
    score_retrieval(by_field, MetricSettings(match="meta.file_name", metrics=["mrr"]))
    assert by_field[0].scores["mrr"] == 0.5              # found second, by its file name


def test_exact_match_normalises_and_a_failed_run_counts_as_a_failure():
    cases = [CaseRun("a", True, answer="In the Cellar.", expected_answer="in the cellar"),
             CaseRun("b", True, answer="In the attic", expected_answer="in the cellar"),
             CaseRun("c", False, expected_answer="in the cellar", errors={"exact_match": "the run failed"})]
    settings = MetricSettings(metrics=["exact_match"])
    score_answers(cases, settings, None)
    summary = summarise(cases, [10.0, 30.0], settings)
    assert [c.scores.get("exact_match") for c in cases] == [1.0, 0.0, None]
    assert summary["metrics"]["exact_match"] == {"mean": 0.5, "n": 2, "errors": 1}
    assert (summary["failed"], summary["failure_rate"]) == (1, pytest.approx(1 / 3))
    assert summary["latency_ms"] == {"p50": 10.0, "p95": 30.0}


def test_sas_without_its_model_is_an_error_per_case_not_a_silent_gap():
    cases = [CaseRun("a", True, answer="x", expected_answer="y")]
    score_answers(cases, MetricSettings(metrics=["sas"], sas_model="acme/absent"), None)
    assert "sas" not in cases[0].scores and "acme/absent' is not on this machine" in cases[0].errors["sas"]


def test_outputs_are_read_by_name_or_by_shape():
    outputs = {"answer": [{"role": "assistant", "text": "In the cellar", "meta": {}}],
               "documents": [doc("d1", "cellar")], "prompt": "Q: where?"}
    assert read_outputs(outputs, MetricSettings()) == ("In the cellar", [doc("d1", "cellar")])
    assert read_outputs(outputs, MetricSettings(answer_output="prompt"))[0] == "Q: where?"
    assert read_outputs(None, MetricSettings()) == (None, [])


def test_the_sign_test_says_how_likely_a_split_is_by_chance():
    assert sign_test(0, 0) == 1.0
    assert sign_test(4, 0) == pytest.approx(0.125)          # 2 × (1/2)^4
    assert sign_test(9, 1) == pytest.approx(2 * 11 / 1024)


def test_a_snippet_is_found_in_its_chunk_or_a_good_part_of_it_not_in_a_word_or_common_words():
    from evaluations.metrics import snippet_matches

    gold = "Every employee gets thirty days of paid vacation per year. Unused days expire in March."
    assert snippet_matches(gold, "Policy. " + gold + " Ask HR.")
    assert snippet_matches(gold, "thirty days of paid vacation per year.")          # cut smaller elsewhere
    assert not snippet_matches(gold, "Vacation")
    assert not snippet_matches(gold, "Employees get ten days of paid sick leave per year.")


def test_the_prompt_and_the_tokens_a_reply_reports_are_kept_where_known():
    from evaluations.metrics import read_extras

    outputs = {"prompt": "Q: where?", "answer": [{"role": "assistant", "text": "x",
                                                  "meta": {"usage": {"total_tokens": 42}}}]}
    assert read_extras(outputs) == ("Q: where?", 42)
    assert read_extras({"answer": "plain"}) == (None, None)
