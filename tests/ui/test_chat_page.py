"""The chat page of a published app in Debian's Chromium: a RAG app's streamed reply and its sources; a chat app
with memory answering a follow-up from the turn before (the in-test OpenAI-compatible server says what reached
its prompt), a thumbs-down that the logs show, the conversation shown again and continued after a reload, and
a cleared log starting a new one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.support.chat import heard
from tests.support.openai_server import ChatServer
from tests.support.specs import memory_chat
from tests.support.stack import Stack, process_stack, wait_until
from workflows.templates import template_path

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


@pytest.fixture(scope="module")
def llm() -> Iterator[ChatServer]:
    with ChatServer(reply=heard) as server:
        yield server


@pytest.fixture(scope="module")
def rag_app(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cold_model: Path,
            llm: ChatServer) -> Iterator[Stack]:
    gen = process_stack("redis", tmp_path_factory.mktemp("chat-page"), tiny_model, cold_model)
    stack = next(gen)
    stack.extra_env["STACKYARD_MODEL_PATHS"] = json.dumps({"Qwen/Qwen2.5-0.5B-Instruct": str(tiny_model)})
    stack.extra_env["TEST_LLM_KEY"] = "k"
    stack.start_web()
    worker = stack.start_worker(queues="cpu,gpu", name="worker-chat-page")
    docs = stack.files_root / "kb"
    docs.mkdir(parents=True)
    (docs / "otters.txt").write_text("Sea otters hold hands while they sleep so they do not drift apart.")
    (docs / "volcanoes.txt").write_text("Shield volcanoes are built almost entirely of fluid lava flows.")
    stack.create("ingest", yaml.safe_load(template_path("ingest").read_text()))
    assert stack.start_run("ingest", {"files": ["kb"]}, wait=180)["state"] == "succeeded"
    stack.create("rag", yaml.safe_load(template_path("rag_chat").read_text()))
    assert stack.api("POST", "/api/v1/publications", json={"workflow": "rag", "slug": "kb"}).status_code == 201
    stack.create("memory-chat", memory_chat(llm.base_url))
    assert stack.api("POST", "/api/v1/publications", json={"workflow": "memory-chat", "slug": "mem",
                                                            "check": False}).status_code == 201
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


def wait_for(listed):   # noqa: ANN001, ANN201 - a callable giving a list
    return wait_until(listed, timeout=10, interval=0.2, message="the rating to reach the logs")


def test_chat_page_streams_a_reply_and_shows_sources(rag_app: Stack):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"{rag_app.base_url}/chat/kb", wait_until="domcontentloaded")
            assert "/chat-app/" in page.url
            page.get_by_role("heading", name="kb").wait_for(timeout=30000)
            box = page.locator("textarea").first
            box.fill("Why do sea otters hold hands?")
            box.press("Enter")
            log = page.locator("#chat-log")
            log.get_by_text("the answer is stackyard").wait_for(timeout=60000)
            log.get_by_text("Sources").wait_for(timeout=60000)
            text = log.inner_text()
            assert "otters.txt" in text and "hold hands while they sleep" in text
            page.screenshot(path=str(ARTIFACTS / "chat-page.png"), full_page=True)
        finally:
            browser.close()


def test_a_follow_up_on_the_chat_page_is_answered_from_the_turn_before_and_a_thumbs_down_is_logged(rag_app: Stack):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(f"{rag_app.base_url}/chat/mem", wait_until="domcontentloaded")
            page.get_by_role("heading", name="mem").wait_for(timeout=30000)
            log = page.locator("#chat-log")
            for question, reply in (("My cat is called Miso.", "heard: My cat is called Miso."),
                                    ("What is my cat called?",
                                     "heard: My cat is called Miso. / What is my cat called?")):
                box = page.locator("textarea").first
                box.fill(question)
                box.press("Enter")
                log.get_by_text(reply, exact=True).wait_for(timeout=60000)
            page.get_by_label("Dislike").last.click()
            page.screenshot(path=str(ARTIFACTS / "chat-page-memory.png"), full_page=True)
            rated = wait_for(lambda: rag_app.api("GET", "/api/v1/conversations",
                                                 params={"app": "mem", "rating": "down"}).json())
            assert [e["message"] for e in rated] == ["What is my cat called?"]
            cookies = {c["name"]: c for c in page.context.cookies()}
            assert cookies["stackyard_visitor"]["httpOnly"]

            page.reload(wait_until="domcontentloaded")      # the conversation is shown again and goes on
            log.get_by_text("heard: My cat is called Miso. / What is my cat called?", exact=True).wait_for(
                timeout=30000)
            box = page.locator("textarea").first
            box.fill("And its colour?")
            box.press("Enter")
            log.get_by_text("heard: My cat is called Miso. / What is my cat called? / And its colour?",
                            exact=True).wait_for(timeout=60000)
            assert log.get_by_text("My cat is called Miso.", exact=True).count() == 1    # shown once, not twice
            page.get_by_label("Like", exact=True).first.click()          # a restored reply is rated as itself
            liked = wait_for(lambda: rag_app.api("GET", "/api/v1/conversations",
                                                 params={"app": "mem", "rating": "up"}).json())
            assert [e["message"] for e in liked] == ["My cat is called Miso."]
            assert len({e["conversation_id"] for e in rated + liked}) == 1

            page.get_by_label("Clear", exact=True).click()               # clearing starts a new conversation
            box.fill("Hello again.")
            box.press("Enter")
            log.get_by_text("heard: Hello again.", exact=True).wait_for(timeout=60000)
            page.reload(wait_until="domcontentloaded")
            log.get_by_text("heard: Hello again.", exact=True).wait_for(timeout=30000)
            assert log.get_by_text("heard: My cat is called Miso.", exact=True).count() == 0
        finally:
            browser.close()
