"""The evaluations page (``/evaluations``) in Debian's Chromium against a real web server and worker (Redis +
PostgreSQL): a user uploads a JSONL test set, browses its cases, evaluates the one-node ``greet`` workflow on it
with exact match, watches the progress bar reach done, reads the chart (one bar at 2/3), the scores' spread, the
latency histogram (its bars hold the three cases) and the per-case table, and compares the evaluation with itself
(no change; both latency histograms alike)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.editor_browser import ARTIFACTS, launch
from tests.support.editor_browser import dataframe_rows as rows
from tests.support.specs import greet
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
WAIT = 60_000  # ms; other work shares these two cores
CASES = [{"id": "ada", "input": "Ada", "expected_answer": "Hello Ada"},
         {"id": "bob", "input": "Bob", "expected_answer": "hello bob!"},   # exact match ignores case and punctuation
         {"id": "cy", "input": "Cy", "expected_answer": "Goodbye Cy"}]


@pytest.fixture(scope="module")
def evaluations_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("evaluations-page")
    unused = root / "no-model"  # greet loads no model, so the tiny chat models are not built
    gen = process_stack("redis", root, unused, unused)
    stack = next(gen)
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", name="worker-evaluations-page")
    stack.create("greet", greet())
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


def test_upload_a_test_set_evaluate_a_workflow_and_read_its_scores(evaluations_stack: Stack, tmp_path: Path):
    source = tmp_path / "greetings.jsonl"
    source.write_text("\n".join(json.dumps(case) for case in CASES) + "\n")
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(WAIT)
            page.goto(f"{evaluations_stack.base_url}/evaluations", wait_until="domcontentloaded")
            page.get_by_label("Test set name", exact=True).fill("greetings")
            page.locator("#ev-upload input[type=file]").set_input_files(str(source))
            page.locator("#ev-upload").get_by_label("greetings.jsonl").wait_for()   # uploaded: the component lists it
            page.get_by_role("button", name="Import file").click()
            page.locator("#ev-set-message").get_by_text("Test set 'greetings' revision 1: 3 case(s)").wait_for()
            expect(page.locator("#ev-cases [role=row][data-index]")).to_have_count(3, timeout=WAIT)
            assert [r[:3] for r in rows(page, "ev-cases")] == [[c["id"], c["input"], c["expected_answer"]]
                                                              for c in CASES]
            assert rows(page, "ev-sets")[0][:3] == ["greetings", "1", "3"]

            workflow = page.get_by_role("combobox", name="Workflow")
            workflow.click()
            page.get_by_role("option", name="greet", exact=True).click()
            expect(workflow).to_have_value("greet", timeout=WAIT)
            expect(page.get_by_role("combobox", name="Test set", exact=True)).to_have_value("greetings", timeout=WAIT)
            for metric in ("recall", "mrr"):
                page.locator("#ev-metrics").get_by_label(metric, exact=True).uncheck()
            page.get_by_role("button", name="Start evaluation").click()
            status = page.locator("#ev-message")
            status.get_by_text("started: greet v1 on greetings r1").wait_for()
            evaluation_id = re.search(r"Evaluation ([0-9a-f]{32}) started", status.inner_text()).group(1)

            progress = page.locator("#ev-progress")
            expect(progress).to_have_attribute("data-state", "done", timeout=WAIT)
            assert (progress.get_attribute("data-done"), progress.get_attribute("data-total")) == ("3", "3")
            bars = page.locator("#ev-chart .ev-bar")
            expect(bars).to_have_count(1, timeout=WAIT)
            assert [bars.first.get_attribute(a) for a in ("data-metric", "data-mean", "data-n")] == [
                "exact_match", "0.6667", "3"]
            assert page.locator('#ev-dist .ev-dist[data-metric="exact_match"]').get_attribute("data-bins") == "1,0,0,2"
            latency = page.locator("#ev-latency")
            expect(latency).to_be_visible(timeout=WAIT)
            assert sum(map(int, latency.locator(".ev-lat-bin").evaluate_all("bins => bins.map(b => b.dataset.count)"))) \
                == 3                                                       # each case that ran, in one bin
            tallest = latency.locator('.ev-lat-bin:not([data-count="0"]) .ev-lat-bar').first
            expect(tallest).to_be_visible(timeout=WAIT)
            assert tallest.bounding_box()["height"] >= 2
            expect(latency.locator(".ev-lat-mark")).to_have_count(2, timeout=WAIT)         # p50 and p95
            expect(page.locator("#ev-results [role=row][data-index]")).to_have_count(3, timeout=WAIT)
            assert [r[:5] for r in rows(page, "ev-results")] == [
                ["ada", "Ada", "yes", "Hello Ada", "exact_match 1.000"],
                ["bob", "Bob", "yes", "Hello Bob", "exact_match 1.000"],
                ["cy", "Cy", "yes", "Hello Cy", "exact_match 0.000"]]
            expect(page.locator("#ev-evaluations [role=row][data-index]").first).to_contain_text("done", timeout=WAIT)
            assert rows(page, "ev-evaluations")[0][:8] == [evaluation_id, "greet", "1", "greetings", "1", "done", "—",
                                                           "0%"]

            page.get_by_role("button", name="Compare: use as A").click()
            page.get_by_role("button", name="Compare: use as B").click()
            expect(page.get_by_label("B evaluation id")).to_have_value(evaluation_id, timeout=WAIT)
            page.get_by_role("button", name="Compare", exact=True).click()
            page.locator("#ev-compare-line").get_by_text("0 case(s) got worse").wait_for()
            expect(page.locator("#ev-worse")).to_have_text("No case changed.", timeout=WAIT)
            pair = page.locator('#ev-compare-chart .ev-pair[data-metric="exact_match"]')
            assert (pair.get_attribute("data-a"), pair.get_attribute("data-b")) == ("0.6667", "0.6667")
            assert rows(page, "ev-compare")[0][:5] == ["exact_match", "0.667", "0.667", "+0.000", "1.000"]
            sides = page.locator("#ev-compare-latency .ev-latency")
            expect(sides).to_have_count(2, timeout=WAIT)
            counts = [side.locator(".ev-lat-bin").evaluate_all("bins => bins.map(b => b.dataset.count)")
                      for side in sides.all()]
            assert counts[0] == counts[1] and sum(map(int, counts[0])) == 3
            expect(sides.nth(1).locator('.ev-lat-bin:not([data-count="0"]) .ev-lat-bar').first).to_be_visible()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "evaluations-page.png"), full_page=True)
        finally:
            browser.close()
