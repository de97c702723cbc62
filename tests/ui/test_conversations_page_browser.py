"""The conversations page (``/conversations``) in Debian's Chromium against a real web server and worker (Redis +
PostgreSQL): callers chat with a published ``greet`` app over REST and one reply gets a thumbs-down; the PM sees
every exchange (a hostile message shown as text, never run), keeps only the 👎 ones, clicks the row to read its
whole conversation (each reply, the rating and comment, the link to the run's trace), makes test cases from two
of its turns and sees each revision, exports the filtered log as CSV, is told a bad date next to its field, and
deletes the conversation after confirming."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from tests.support.chat import new_key
from tests.support.editor_browser import ARTIFACTS, launch
from tests.support.specs import greet
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
WAIT = 60_000  # ms; other work shares these two cores
HOSTILE = "<img src=x onerror=window.pwned=1>"


@pytest.fixture(scope="module")
def conversations_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("conversations-page")
    unused = root / "no-model"  # greet loads no model, so the tiny chat models are not built
    gen = process_stack("redis", root, unused, unused)
    stack = next(gen)
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", name="worker-conversations-page")
    stack.create("greet", greet())
    made = stack.api("POST", "/api/v1/publications", json={"workflow": "greet", "slug": "greeter", "message": "name",
                                                            "reply": "greeting", "check": False})
    assert made.status_code == 201, made.text
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


def say(stack: Stack, key: str, message: str, conversation: str | None = None) -> dict:
    turn = httpx.post(f"{stack.base_url}/api/v1/apps/greeter/chat", headers={"Authorization": f"Bearer {key}"},
                      json={"message": message, "conversation_id": conversation}, timeout=120)
    assert turn.status_code == 200, turn.text
    return turn.json()


def box(page: Page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def test_filter_the_thumbs_down_open_its_thread_and_make_test_cases(conversations_stack: Stack):
    stack = conversations_stack
    key = new_key(stack, name="pm")
    first = say(stack, key, "Ada")
    rated = say(stack, key, "Where is the tower?", first["conversation_id"])
    say(stack, key, HOSTILE)
    down = httpx.post(f"{stack.base_url}/api/v1/apps/greeter/messages/{rated['message_id']}/feedback",
                      headers={"Authorization": f"Bearer {key}"}, json={"rating": "down", "comment": "not an answer"})
    assert down.status_code == 200, down.text

    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(WAIT)
            page.goto(f"{stack.base_url}/conversations", wait_until="domcontentloaded")
            log = page.locator("#cv-log")
            expect(log).to_have_attribute("data-rows", "3", timeout=WAIT)
            expect(page.locator("#cv-line")).to_contain_text("Exchanges 1–3, newest first · page 1.")
            expect(log.locator(".cv-row").first).to_contain_text(HOSTILE)          # the newest, as text
            assert log.locator("img").count() == 0 and page.evaluate("window.pwned") is None

            page.locator("#cv-rating").get_by_label("👎").check()
            expect(log).to_have_attribute("data-rows", "1", timeout=WAIT)
            row = log.locator(".cv-row")
            expect(row).to_contain_text("Where is the tower?")
            expect(row).to_contain_text("Hello Where is the tower?")
            expect(row).to_contain_text("👎")

            row.click()
            thread = page.locator("#cv-thread")
            expect(thread).to_have_attribute("data-turns", "2", timeout=WAIT)
            expect(thread).to_have_attribute("data-conversation", first["conversation_id"])
            turns = thread.locator(".cv-turn")
            expect(turns.nth(0).locator(".cv-reply")).to_have_text("Hello Ada")
            expect(turns.nth(1).locator(".cv-message")).to_have_text("Where is the tower?")
            expect(turns.nth(1).locator(".cv-rating")).to_have_text("👎 “not an answer”")
            expect(turns.nth(1).locator(".cv-trace")).to_have_attribute("href", f"/api/v1/runs/{rated['run_id']}")
            expect(box(page, "cv-conversation-id")).to_have_value(first["conversation_id"])
            expect(box(page, "cv-message-id")).to_have_value(rated["message_id"])   # the row clicked

            box(page, "cv-test-set").fill("from-chat")
            box(page, "cv-expected").fill("On the hill.")
            page.locator("#cv-make-case").click()
            expect(page.locator("#cv-case-line")).to_contain_text(
                f"Test set 'from-chat' revision 1: 1 case(s); this message is case chat-{rated['message_id'][:16]}",
                timeout=WAIT)
            turns.nth(0).get_by_role("button", name="Use for a test case").click()
            expect(box(page, "cv-message-id")).to_have_value(first["message_id"], timeout=WAIT)
            page.locator("#cv-make-case").click()
            expect(page.locator("#cv-case-line")).to_contain_text("Test set 'from-chat' revision 2: 2 case(s)",
                                                                  timeout=WAIT)
            cases = stack.api("GET", "/api/v1/test-sets/from-chat/cases").json()["cases"]
            assert sorted(c["inputs"]["name"] for c in cases) == ["Ada", "Where is the tower?"]  # the app's input

            page.locator("#cv-export-csv").click()
            expect(page.locator("#cv-export-line")).to_contain_text("1 exchange(s) in conversations.csv", timeout=WAIT)
            link = page.locator("#cv-export a[href*='conversations.csv']").first
            expect(link).to_be_attached(timeout=WAIT)
            exported = page.request.get(link.get_attribute("href")).text()
            assert exported.startswith("created_at,app,conversation_id") and "Where is the tower?" in exported
            assert "Ada" not in exported                                          # the filter: 👎 only

            box(page, "cv-from").fill("2026-13-01")
            box(page, "cv-from").press("Enter")
            expect(page.locator("#cv-from-error")).to_contain_text("From '2026-13-01' is not a date", timeout=WAIT)
            box(page, "cv-from").fill("")
            box(page, "cv-from").press("Enter")
            expect(page.locator("#cv-from-error")).not_to_contain_text("not a date", timeout=WAIT)
            expect(log).to_have_attribute("data-rows", "1", timeout=WAIT)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "conversations-page.png"), full_page=True)

            page.locator("#cv-delete").click()
            expect(page.locator("#cv-confirm-line")).to_contain_text(
                "Delete conversation 'Ada' (greeter) and its 2 message(s), with the runs", timeout=WAIT)
            page.locator("#cv-confirm-delete").click()
            expect(page.locator("#cv-delete-line")).to_contain_text("deleted with its messages and their runs",
                                                                    timeout=WAIT)
            expect(log).to_have_attribute("data-rows", "0", timeout=WAIT)
            expect(page.locator("#cv-confirm-delete")).to_be_hidden()
            gone = stack.api("GET", f"/api/v1/conversations/{first['conversation_id']}")
            assert gone.status_code == 404, gone.text
        finally:
            browser.close()
