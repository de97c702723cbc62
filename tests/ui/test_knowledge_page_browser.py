"""The knowledge page (``/knowledge``) in Debian's Chromium against a real web server and worker (Redis +
PostgreSQL, milvus-lite, MiniLM): a user creates a base, uploads a mixed folder (the folder picker) and watches every document's bar
reach done, finds a chunk, edits it, tests a query whose right answer is that chunk (a chart of the scores), and
re-indexes with longer chunks while the current index answers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.editor_browser import ARTIFACTS, launch
from tests.support.editor_browser import dataframe_rows as rows
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
WAIT = 90_000  # ms; other work shares these two cores
FOLDER = {
    "policy.txt": "Every employee gets thirty days of paid vacation per year. Unused days expire in March.",
    "parking.md": "# Parking\n\nBicycles are parked in the basement cellar next to the boiler room.",
    "canteen.html": "<html><body><article><p>The canteen serves lunch from noon until two o'clock on every "
                    "weekday, and soup on Fridays.</p></article></body></html>",
    "rooms.csv": "room,floor\nlibrary,3\nboard room,5\n",
}


@pytest.fixture(scope="module")
def knowledge_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("knowledge-page")
    unused = root / "no-model"  # MiniLM is bundled; no chat model is needed
    gen = process_stack("redis", root, unused, unused)
    stack = next(gen)
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", name="worker-knowledge-page")
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


def test_create_upload_browse_edit_query_and_reindex(knowledge_stack: Stack, tmp_path: Path):
    folder = tmp_path / "handbook"
    (folder / "facilities").mkdir(parents=True)
    for name, text in FOLDER.items():      # a folder as people have them: a subfolder, a file no base reads
        (folder / ("facilities" if name.endswith((".md", ".html")) else "") / name).write_text(text)
    (folder / "facilities" / "floorplan.png").write_bytes(b"\x89PNG\r\n")
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(WAIT)
            page.goto(f"{knowledge_stack.base_url}/knowledge", wait_until="domcontentloaded")
            page.get_by_text("New knowledge base").click()
            page.get_by_label("Name", exact=True).fill("handbook")
            for field, value in (("#kb-length input", "12"), ("#kb-overlap input", "2")):
                page.locator(field).fill(value)
                page.locator(field).press("Tab")        # committed, as a person leaving the field does
                expect(page.locator(field)).to_have_value(value)
            page.get_by_role("button", name="Create knowledge base").click()
            message = page.locator("#kb-message")
            message.get_by_text("Knowledge base 'handbook' created").wait_for()
            expect(page.locator("#kb-state")).to_have_attribute("data-status", "empty", timeout=WAIT)

            page.locator("#kb-folder input[type=file]").set_input_files(str(folder))   # the folder picker
            page.locator("#kb-folder").get_by_label("rooms.csv").wait_for()     # uploaded: the component lists it
            page.get_by_text("Preview the chunks first").click()          # before spending: no embedding
            page.get_by_role("button", name="Preview chunks").click()
            expect(page.locator("#kb-preview-line")).to_contain_text("with chunks of 12 words (overlap 2)",
                                                                     timeout=WAIT)
            assert rows(page, "kb-preview-chunks")
            page.get_by_role("button", name="Add documents").click()
            message.get_by_text("4 document(s) queued for indexing. Left out 1 file(s) of the folder").wait_for()
            expect(page.locator("#kb-progress .kb-doc")).to_have_count(4, timeout=WAIT)
            expect(page.locator('#kb-progress .kb-doc[data-state="done"]')).to_have_count(4, timeout=WAIT)
            expect(page.locator("#kb-state")).to_have_attribute("data-status", "ready", timeout=WAIT)
            documents = rows(page, "kb-documents")
            assert sorted((Path(r[1]).name, r[2], r[3]) for r in documents) == sorted(
                (name, "done", "100%") for name in FOLDER)

            page.get_by_label("Search chunks").fill("cellar")
            page.get_by_role("button", name="Search", exact=True).click()
            expect(page.locator("#kb-chunks [role=row][data-index]")).to_have_count(1, timeout=WAIT)
            [cellar] = rows(page, "kb-chunks")
            assert cellar[1].endswith("parking.md") and "cellar" in cellar[6]
            page.locator("#kb-chunks [role=gridcell]").first.click()
            expect(page.get_by_label("Chunk id", exact=True)).to_have_value(cellar[0], timeout=WAIT)
            expect(page.locator("#kb-chunk-text textarea")).to_have_value(re.compile("cellar"), timeout=WAIT)
            page.locator("#kb-chunk-text textarea").fill("Bicycles now go in the new underground garage.")
            page.get_by_role("button", name="Save chunk").click()
            message.get_by_text("saved and embedded again").wait_for()

            page.get_by_label("Query", exact=True).fill("underground garage for bicycles")
            page.get_by_role("button", name="Test query").click()
            page.locator("#kb-answer").get_by_text("hit(s)").wait_for()
            assert "from generation 1" in page.locator("#kb-answer").inner_text()
            hits = rows(page, "kb-hits")
            assert hits[0][7] == cellar[0] and "underground garage" in hits[0][6]
            assert float(hits[0][1]) > float(hits[-1][1])
            bars = page.locator("#kb-chart .kb-bar")
            expect(bars).to_have_count(len(hits), timeout=WAIT)
            assert bars.first.get_attribute("data-chunk") == cellar[0]
            assert float(bars.first.get_attribute("data-score")) == pytest.approx(float(hits[0][1]), abs=1e-3)

            page.locator("#kb-queries [role=gridcell]").first.click()      # the query just recorded
            expect(page.get_by_label("Recorded query id")).not_to_have_value("", timeout=WAIT)
            page.get_by_role("button", name="Keep as test case").click()
            message.get_by_text("Kept as a test case: a right answer finds").wait_for()
            assert message.inner_text().strip().endswith("parking.md.")
            expect(page.locator("#kb-queries [role=row][data-index]").first).to_contain_text("yes", timeout=WAIT)

            page.locator("#kb-re-length input").fill("30")
            page.locator("#kb-re-overlap input").fill("0")
            page.get_by_role("button", name="Re-index", exact=True).click()
            message.get_by_text("Re-indexing 4 document(s) with chunks of 30").wait_for()
            expect(page.locator("#kb-state")).to_have_attribute("data-generation", "2", timeout=WAIT)
            expect(page.locator("#kb-state")).to_have_attribute("data-status", "ready", timeout=WAIT)
            page.get_by_role("button", name="Test query").click()
            page.locator("#kb-answer").get_by_text("from generation 2").wait_for()
            # the edit carried over: cut under the old length, it is now a chunk of its own after the new split
            assert rows(page, "kb-hits")[0][6] == "Bicycles now go in the new underground garage."
            page.get_by_role("button", name="Ask again").click()              # the kept query, on generation 2
            page.locator("#kb-answer").get_by_text("Asked again on generation 2 (recorded on 1)").wait_for()
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "knowledge-page.png"), full_page=True)
        finally:
            browser.close()
