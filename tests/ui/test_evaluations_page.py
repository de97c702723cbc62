"""The evaluations page's handlers, called directly (no browser): a CSV upload makes a revision and a JSONL one the
next, bad files and bad form fields are refused naming the field with nothing stored, a started evaluation sends
its job once (asking again reuses it), the results show one bar per metric at its mean, the scores' spread and the
per-case table, the cases' latency as a histogram (both runs' on the same bins when compared), and a comparison puts
the case that got worse first; user text is never rendered as HTML."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from evaluations import testsets
from evaluations.metrics import percentile
from evaluations.models import EvalResult, EvalState, Evaluation
from store.db import session_scope
from ui import evaluations_page as page
from workflows import crud

CSV = "id,input,expected_answer,expected_document_ids,expected_snippet\n" \
      "c1,Where do bikes go?,In the cellar,doc-1,cellar\nc2,Who pays?,The company,,\nc3,When is lunch?,At noon,,\n"
HOSTILE = "<img src=x onerror=alert(1)>"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.fixture
def dispatched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The job ids the page sends to the workers (no broker here)."""
    sent: list[str] = []
    monkeypatch.setattr(page.batch, "dispatch", sent.append)
    return sent


def test_a_csv_upload_makes_a_revision_and_a_jsonl_one_the_next(database, tmp_path: Path):
    status, table, choices = page.import_cases("faq", write(tmp_path, "faq.csv", CSV), "office questions")
    assert status == "✅ Test set 'faq' revision 1: 3 case(s); 3 imported from faq.csv.", status
    assert [row[:4] for row in table] == [["faq", 1, 3, "office questions"]]
    assert choices == {"__type__": "update", "choices": ["faq"], "value": "faq"}      # picked for a run
    lines = [{"id": "c3", "input": "When is lunch served?", "expected_answer": "At noon"},
             {"id": "c4", "input": "Is there soup?", "expected_answer": "On Fridays"}]
    status, table, _ = page.import_cases("faq", write(tmp_path, "more.jsonl", "\n".join(map(json.dumps, lines))))
    assert status.startswith("✅ Test set 'faq' revision 2: 4 case(s)"), status       # c3 replaced, c4 added
    assert [row[:3] for row in table] == [["faq", 2, 4]]

    line, rows = page.cases_view("faq", "", 1)
    assert line == "Revision 2 of 'faq' (imported 2 case(s) from more.jsonl): 4 case(s); page 1 of 1, cases 1–4."
    assert [r[0] for r in rows] == ["c1", "c2", "c3", "c4"]
    assert rows[0][1:4] == ["Where do bikes go?", "In the cellar", "doc-1: cellar"]
    assert rows[2][1] == "When is lunch served?"
    assert [r[1] for r in page.cases_view("faq", "1", None)[1]] == ["Where do bikes go?", "Who pays?", "When is lunch?"]
    assert page.cases_view("faq", "", 2) == ("Revision 2 of 'faq' (imported 2 case(s) from more.jsonl): 4 case(s); "
                                            "page 2 of 1, past the last page.", [])


def test_bad_files_and_fields_are_refused_naming_the_field_with_nothing_stored(database, tmp_path: Path):
    bad = page.import_cases("faq", write(tmp_path, "bad.csv", "question\nWho?\n"))[0]
    assert bad.startswith("⚠️ File: The CSV has no input column (its columns: question)"), bad
    jsonl = page.import_cases("faq", write(tmp_path, "bad.jsonl", '{"input": "a"}\n{"input": \n'))[0]
    assert jsonl.startswith("⚠️ File: JSONL line 2 is not valid JSON"), jsonl
    latin = tmp_path / "latin.csv"
    latin.write_bytes("input\ncafé\n".encode("latin-1"))
    assert page.import_cases("faq", str(latin))[0] == "⚠️ File: latin.csv is not UTF-8 text; save it as UTF-8."
    assert page.import_cases("faq", None)[0] == "⚠️ File: pick a CSV or JSONL file first."
    named = page.import_cases("../faq", write(tmp_path, "ok.csv", CSV))[0]
    assert named.startswith("⚠️ Test set name '../faq' must be 1-100 letters, digits"), named
    assert page.add_case(" ", "", "Who?", "", "", "")[0].startswith("⚠️ Test set name '' must be")
    long = page.import_cases("faq", write(tmp_path, "ok.csv", CSV), "x" * 2001)[0]
    assert long == "⚠️ description is at most 2,000 characters.", long
    assert page.test_sets_table() == []

    assert page.add_case("faq", "", "  ", "", "", "")[0] == "⚠️ Input: type the case's input (the question)."
    long_id = page.add_case("faq", "", "Who?", "", "d" * 65, "")[0]
    assert long_id.startswith("⚠️ Expected document id: String should have at most 64 characters"), long_id
    assert page.add_case("faq", "", "Who?", "", "", "a snippet")[0].startswith("⚠️ Expected document id:")
    assert page.test_sets_table() == []
    assert page.cases_view("nope", "", 1)[0] == "⚠️ Test set: no test set 'nope'; import one first."


def test_a_case_added_by_hand_makes_or_extends_a_set(database):
    status, table, _ = page.add_case("faq", "bikes", "Where do bikes go?", "In the cellar", "doc-1", "the cellar")
    assert status == "✅ Test set 'faq' revision 1: 1 case(s); one case added.", status
    status, table, _ = page.add_case("faq", "", "Who pays?", "", "", "")
    assert status.startswith("✅ Test set 'faq' revision 2: 2 case(s)") and table[0][:3] == ["faq", 2, 2]
    _, rows = page.cases_view("faq", None, None)
    assert [r[:4] for r in rows] == [["bikes", "Where do bikes go?", "In the cellar", "doc-1: the cellar"],
                                     ["case-2-2", "Who pays?", "", ""]]


def test_an_evaluation_starts_once_shows_progress_and_refuses_bad_fields(workflow, dispatched, tmp_path: Path):
    page.import_cases("greetings", write(tmp_path, "g.jsonl", '{"id": "a", "input": "Ada", "expected_answer": '
                                                              '"Hello Ada"}\n{"id": "b", "input": "Bob"}\n'))
    refused = [  # (workflow, version, test set, revision, k, metrics), what the line says
        (("", "", "greetings", "", 5, ["exact_match"]), "⚠️ Workflow: pick a workflow."),
        (("nope", "", "greetings", "", 5, ["exact_match"]), "⚠️ Workflow: no workflow 'nope'."),
        ((workflow, "7", "greetings", "", 5, ["exact_match"]), f"⚠️ Version: workflow '{workflow}' has no version 7"),
        ((workflow, "abc", "greetings", "", 5, ["exact_match"]), "⚠️ Version 'abc' is not a whole number"),
        ((workflow, "", "", "", 5, ["exact_match"]), "⚠️ Test set: pick a test set"),
        ((workflow, "", "nope", "", 5, ["exact_match"]), "⚠️ Test set: no test set 'nope'"),
        ((workflow, "", "greetings", "3", 5, ["exact_match"]), "⚠️ Revision: Test set 'greetings' has no revision 3"),
        ((workflow, "", "greetings", "", 0, ["exact_match"]), "⚠️ k '0' is not a whole number from 1 to 100"),
        ((workflow, "", "greetings", "", 5, []), "⚠️ Metrics: tick at least one."),
    ]
    for form, says in refused:
        status, evaluation_id, _ = page.start_evaluation(*form)
        assert status.startswith(says) and evaluation_id == "", (form, status)
    assert dispatched == []

    status, evaluation_id, table = page.start_evaluation(workflow, "", "greetings", "", 5, ["exact_match"])
    assert status == f"✅ Evaluation {evaluation_id} started: {workflow} v1 on greetings r1.", status
    assert [row[1:7] for row in table] == [[workflow, 1, "greetings", 1, "running", "—"]]
    with session_scope() as session:
        job_id = page.lifecycle.get(session, evaluation_id).job_id
    assert dispatched == [job_id]
    bar = page.progress_html(evaluation_id)
    assert re.search(r'id="ev-progress" data-state="running" data-done="0" data-failed="0" data-total="2"', bar), bar
    again, same, _ = page.start_evaluation(workflow, "1", "greetings", "1", 5, ["exact_match"])
    assert same == evaluation_id and "nothing runs again" in again and dispatched == [job_id]
    summary, rows = page.results_view(evaluation_id)
    assert 'data-state="running"' in summary and "its scores show once it is done" in summary and rows == []

    assert page.retry_evaluation(evaluation_id) == (f"⚠️ Evaluation '{evaluation_id}' is running; failed cases run "
                                                    "again once it is done.")
    assert page.cancel_evaluation(evaluation_id).startswith(f"✅ Evaluation {evaluation_id} cancelled")
    assert 'data-state="cancelled"' in page.progress_html(evaluation_id)
    assert page.cancel_evaluation(evaluation_id) == (f"⚠️ Evaluation '{evaluation_id}' is cancelled; only a running "
                                                    "one can be cancelled.")    # twice: refused, naming why
    assert page.cancel_evaluation("missing") == ("⚠️ Evaluation: no evaluation 'missing'; pick one in the evaluations "
                                                 "table.")
    assert page.retry_evaluation("") == "⚠️ Evaluation: pick one in the evaluations table."


def finished(scores: dict[str, list[float | None]], answers: list[str], *, created: str,
             latencies: tuple[float, float] = (12.0, 40.0), keys: tuple[str, ...] = ("c1", "c2", "c3")) -> str:
    """A scored evaluation of the stored ``greet`` on test set 'faq' revision 1 (cases ``keys``; the first two ran,
    taking ``latencies`` ms, the third failed), written as the scorer would leave it; its id."""
    with session_scope() as session:
        test_set = testsets.get(session, "faq")
        revision = testsets.revision(session, test_set, 1)
        workflow = crud.get_workflow(session, ref="greet")
        evaluation = Evaluation(workflow_id=workflow.id, version_id=crud.get_version_id(session, ref="greet"),
                                version=1, test_set_id=test_set.id, revision_id=revision.id, revision=1,
                                reuse_key=created, state=EvalState.DONE, summary={
                                    "cases": 3, "failed": 1, "failure_rate": 1 / 3,
                                    "latency_ms": {"p50": percentile(list(latencies), 0.5),
                                                   "p95": percentile(list(latencies), 0.95)},
                                    "metrics": {m: {"mean": sum(v for v in values if v is not None)
                                                    / len([v for v in values if v is not None]),
                                                    "n": len([v for v in values if v is not None]), "errors": 1}
                                                for m, values in scores.items()}})
        session.add(evaluation)
        session.flush()
        for position, key in enumerate(keys):
            session.add(EvalResult(evaluation_id=evaluation.id, case_key=key, position=position,
                                   succeeded=position < 2, answer=answers[position] if position < 2 else None,
                                   documents=[{"id": f"chunk-{key}", "document_id": f"doc-{key}"}],
                                   error=None if position < 2 else "the run failed: boom",
                                   latency_ms=latencies[position] if position < 2 else None,
                                   scores={m: values[position] for m, values in scores.items()}))
        return evaluation.id


@pytest.fixture
def scored(workflow, tmp_path: Path) -> tuple[str, str]:
    """Two scored evaluations on the same revision: B lost case c1 (its input is hostile HTML)."""
    text = f'input,id\n"{HOSTILE}",c1\nWho pays?,c2\nWhen is lunch?,c3\n'
    assert page.import_cases("faq", write(tmp_path, "faq.csv", text))[0].startswith("✅")
    a = finished({"recall": [1.0, 0.5, None], "mrr": [1.0, 0.0, None]}, [HOSTILE, "noon"], created="a")
    b = finished({"recall": [0.0, 0.5, None], "mrr": [0.25, 0.0, None]}, ["nothing", "noon"], created="b",
                 latencies=(61.0, 9.0))
    return a, b


def test_results_show_a_bar_per_metric_the_spread_and_the_cases(scored):
    a, _ = scored
    summary, rows = page.results_view(a)
    bars = re.findall(r'class="ev-bar" data-metric="(\w+)" data-mean="([\d.]+)" data-n="(\d)"', summary)
    assert bars == [("recall", "0.7500", "2"), ("mrr", "0.5000", "2")]
    widths = re.findall(r'class="ev-bar".*?width:([\d.]+)%', summary)
    assert widths == ["75.0", "50.0"]
    assert re.findall(r'class="ev-dist" data-metric="(\w+)" data-bins="([\d,]+)"', summary) == [
        ("recall", "0,0,1,1"), ("mrr", "1,0,0,1")]       # 0 · below 0.5 · 0.5 up to 1 · 1
    assert "3 cases · 1 failed (33%) · latency p50 12 ms · p95 40 ms" in summary
    assert [r[0] for r in rows] == ["c1", "c2", "c3"] and [r[2] for r in rows] == ["yes", "yes", "no"]
    assert rows[0][4:6] == ["recall 1.000 · mrr 1.000", "doc-c1"] and rows[2][6] == "the run failed: boom"
    assert rows[0][1] == HOSTILE                           # a table cell is text, not markup
    listed = page.evaluations_table()
    assert [r[5:8] for r in listed] == [["done", "0.250", "33%"], ["done", "0.750", "33%"]]


def test_a_comparison_puts_the_worse_case_first_and_escapes_user_text(scored):
    a, b = scored
    line, rows, chart, worse = page.compare_view(a, b)
    assert line.startswith("**B against A** on revision 1: 1 case(s) got worse on a metric; failure rate 33% → 33%.")
    assert rows == [["recall", "0.750", "0.250", "-0.500", "1.000", 0, 1, 2],
                    ["mrr", "0.500", "0.125", "-0.375", "1.000", 0, 1, 2]]
    assert re.findall(r'class="ev-pair" data-metric="(\w+)" data-a="([\d.]+)" data-b="([\d.]+)"', chart) == [
        ("recall", "0.7500", "0.2500"), ("mrr", "0.5000", "0.1250")]
    assert re.findall(r'class="ev-case" data-key="(\w+)" data-worse="(\w+)"', worse) == [("c1", "true")]
    assert "<img" not in worse and "&lt;img src=x onerror=alert(1)&gt;" in worse
    assert "recall -1.000, mrr -0.750" in worse and "doc-c1" in worse

    assert page.compare_view(a, "")[0] == "⚠️ Compare: give two evaluation ids, A (the baseline) and B."
    assert page.compare_view(a, "nope")[0] == "⚠️ B: no evaluation 'nope'; pick one in the evaluations table."


BIN = r'class="ev-lat-bin" data-from="([\d.]+)" data-to="([\d.]+)" data-count="(\d+)"'


def test_results_plot_the_latency_of_the_cases_that_ran(scored):
    a, _ = scored
    summary, _ = page.results_view(a)     # c1 ran in 12 ms, c2 in 40 ms; c3 failed (no latency)
    assert re.findall(BIN, summary) == [("10", "15", "1"), ("15", "20", "0"), ("20", "25", "0"), ("25", "30", "0"),
                                        ("30", "35", "0"), ("35", "40", "0"), ("40", "45", "1")]   # 5 ms bins
    assert re.findall(r'class="ev-lat-mark" data-mark="(p\d+)" data-ms="([\d.]+)"', summary) == [
        ("p50", "12"), ("p95", "40")]
    assert 'id="ev-latency"' in summary and "2 cases ran" in summary and "slowest: c2 (40 ms)" in summary


def test_the_latency_histogram_counts_each_bin_and_escapes_the_slowest_case():
    latencies = [(f"case-{ms}", float(ms)) for ms in range(100)] + [(HOSTILE, 250.0)]
    plot = page.latency_html(latencies, {"p50": 50.0, "p95": 95.0})
    assert re.findall(BIN, plot) == [("0", "50", "50"), ("50", "100", "50"), ("100", "150", "0"),
                                     ("150", "200", "0"), ("200", "250", "0"), ("250", "300", "1")]
    heights = re.findall(r'class="ev-lat-bar" style="height:([\d.]+)%', plot)
    assert heights == ["100.0", "100.0", "0.0", "0.0", "0.0", "2.0"]
    assert "<img" not in plot and "slowest: &lt;img src=x onerror=alert(1)&gt; (250 ms)" in plot
    marks = re.findall(r'class="ev-lat-mark" data-mark="(p\d+)" data-ms="([\d.]+)"[^>]*left:([\d.]+)%', plot)
    assert marks == [("p50", "50", "16.67"), ("p95", "95", "31.67")]      # across 0 to 300 ms
    assert page.latency_html([], {}) == '<div id="ev-latency"><p><b>Latency</b>: no case ran.</p></div>'
    one = page.latency_html([("only", 0.0)], {"p50": 0.0, "p95": 0.0})
    assert re.findall(BIN, one) == [("0", "0.1", "1")]


def test_a_hostile_case_key_in_an_evaluation_is_escaped_in_the_latency_plot(workflow, tmp_path: Path):
    text = f'input,id\nWho?,"{HOSTILE}"\nWhat?,c2\nWhen?,c3\n'
    assert page.import_cases("faq", write(tmp_path, "faq.csv", text))[0].startswith("✅")
    slow = finished({"recall": [1.0, 0.0, None]}, ["a", "b"], created="a", latencies=(90.0, 3.0),
                    keys=(HOSTILE, "c2", "c3"))
    summary, rows = page.results_view(slow)
    assert rows[0][0] == HOSTILE and "<img" not in summary
    assert "slowest: &lt;img src=x onerror=alert(1)&gt; (90 ms)" in summary


def test_a_comparison_plots_both_runs_latency_on_the_same_bins(scored):
    a, b = scored
    _, _, chart, _ = page.compare_view(a, b)     # A: 12 and 40 ms, B: 61 and 9 ms
    runs = re.findall(r'class="ev-lat-bin" data-run="(a|b)" data-from="([\d.]+)" data-to="([\d.]+)" '
                      r'data-count="(\d+)"', chart)
    edges = [(str(10 * i), str(10 * i + 10)) for i in range(7)]
    assert runs == [("a", *e, c) for e, c in zip(edges, "0100100", strict=True)] + [
        ("b", *e, c) for e, c in zip(edges, "1000001", strict=True)]
    assert re.findall(r'class="ev-lat-mark" data-run="(a|b)" data-mark="(p\d+)" data-ms="([\d.]+)"', chart) == [
        ("a", "p50", "12"), ("a", "p95", "40"), ("b", "p50", "9"), ("b", "p95", "61")]
    assert 'id="ev-compare-latency"' in chart and "A: 2 cases ran · p50 12 ms · p95 40 ms" in chart
