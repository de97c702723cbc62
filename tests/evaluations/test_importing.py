"""Test cases from CSV and JSONL: each bad line refused by number with the fix, a single input column, expected
sources as document ids with a gold snippet."""

from __future__ import annotations

import pytest

from evaluations.importing import MAX_CASES, BadTestSet, parse


def test_csv_cases_carry_inputs_expected_sources_and_tags():
    text = ("id,input,expected_answer,expected_document_ids,expected_snippet,tags\n"
            "q1,Where do bikes go?,In the cellar,doc-a|doc-b,bikes are parked in the cellar,parking|easy\n"
            ",How many days?,,,,\n")
    first, second = parse(text, "csv")
    assert (first.key, first.inputs, first.expected_answer, first.tags) == (
        "q1", {"input": "Where do bikes go?"}, "In the cellar", ["parking", "easy"])
    assert [(s.document_id, s.snippet) for s in first.expected_sources] == [
        ("doc-a", "bikes are parked in the cellar"), ("doc-b", "bikes are parked in the cellar")]
    assert (second.key, second.expected_answer, second.expected_sources) == (None, None, [])
    [named] = parse("input.question,input.lang\nWho?,en\n", "csv")
    assert named.inputs == {"question": "Who?", "lang": "en"}


@pytest.mark.parametrize(("text", "kind", "says"), [
    ("question,answer\nWho?,me\n", "csv", "The CSV has no input column (its columns: question, answer)"),
    ("input,colour\nWho?,red\n", "csv", "column(s) colour that a case has no place for"),
    ('{"input": "Who?"}\n{"input": "Why?", "inputs": {"q": "x"}}\n', "jsonl", "JSONL line 2: give input or inputs"),
    ('{"input": "Who?"}\nnot json\n', "jsonl", "JSONL line 2 is not valid JSON"),
    ('{"expected_answer": "x"}\n', "jsonl", 'JSONL line 1 has no input; give "input"'),
    ('{"input": "Who?", "expected_sources": [{"snippet": "x"}]}\n', "jsonl",
     "JSONL line 1: expected_sources.0.document_id: Field required"),
    ('{"input": "Who?", "colour": "red"}\n', "jsonl", "JSONL line 1: colour: Extra inputs are not permitted"),
    ("", "csv", "The CSV has no input column"),
    ('{"input": "x"}', "xml", "format must be csv or jsonl"),
])
def test_a_bad_line_is_refused_naming_it_and_nothing_is_kept(text, kind, says):
    with pytest.raises(BadTestSet, match=says.replace("(", r"\(").replace(")", r"\)")) as refused:
        parse(text, kind)
    assert refused.value.status == 422


def test_too_many_cases_are_refused(monkeypatch):
    from evaluations import importing

    monkeypatch.setattr(importing, "MAX_CASES", 3)
    with pytest.raises(BadTestSet, match="More than 3 cases"):
        parse("input\na\nb\nc\nd\n", "csv")
    assert MAX_CASES == 100_000
