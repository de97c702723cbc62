"""The embeddable chat widget in Debian's Chromium: a page on an allowed origin (a second local port) gets the
bubble, chats (streamed), remembers the conversation across a reload and rates a reply; a page on another
origin cannot show it (the iframe's frame-ancestors refuse); a key not scoped to the app is refused."""

from __future__ import annotations

import functools
import http.server
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.chat import heard, new_key
from tests.support.openai_server import ChatServer
from tests.support.specs import memory_chat
from tests.support.stack import Stack, free_port, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


class Site:
    """A static web site on its own local port: another origin than Stackyard's."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Site, Site]]:
    allowed, other = Site(tmp_path_factory.mktemp("shop")), Site(tmp_path_factory.mktemp("elsewhere"))
    yield allowed, other
    for site in (allowed, other):
        site.server.shutdown()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path, cold_model: Path,
           sites: tuple[Site, Site]) -> Iterator[tuple[Stack, str]]:
    with ChatServer(reply=heard, delay=0.05) as llm:
        gen = process_stack("redis", tmp_path_factory.mktemp("widget"), tiny_model, cold_model)
        stack = next(gen)
        stack.extra_env.update({"TEST_LLM_KEY": "k", "STACKYARD_WIDGET_ORIGINS": sites[0].origin})
        stack.start_web()
        worker = stack.start_worker(queues="cpu,gpu", name="worker-widget")
        stack.create("memory-chat", memory_chat(llm.base_url))
        assert stack.api("POST", "/api/v1/publications", json={"workflow": "memory-chat", "slug": "mem",
                                                                "check": False}).status_code == 201
        key = new_key(stack, name="widget", app="mem")
        for site in sites:
            folder = Path(site.server.RequestHandlerClass.keywords["directory"])
            (folder / "index.html").write_text(
                f'<!doctype html><html><body><h1>Shop</h1><script src="{stack.base_url}/widget.js" data-app="mem" '
                f'data-key="{key}" data-open="true"></script></body></html>')
        yield stack, key
        stack.discard(worker)
        for _ in gen:
            pass


def test_the_widget_chats_on_an_allowed_origin_and_is_refused_elsewhere(served, sites):
    from playwright.sync_api import sync_playwright

    stack, key = served
    allowed, other = sites
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 800})
            page.goto(allowed.origin + "/index.html")
            frame = page.frame_locator("#stackyard-widget-frame")
            for question, reply in (("My cat is called Miso.", "heard: My cat is called Miso."),
                                    ("What is my cat called?",
                                     "heard: My cat is called Miso. / What is my cat called?")):
                frame.locator("#message").fill(question)
                frame.locator("#message").press("Enter")
                frame.locator(".turn.assistant .text", has_text=reply).wait_for(timeout=60000)
            page.screenshot(path=str(ARTIFACTS / "widget.png"))
            page.reload()                                       # the conversation survives a reload
            frame = page.frame_locator("#stackyard-widget-frame")
            frame.locator(".turn.user", has_text="What is my cat called?").wait_for(timeout=30000)
            assert frame.locator(".turn.assistant").count() == 2
            frame.get_by_label("Not helpful").last.click()
            frame.locator(".feedback button.chosen").wait_for(timeout=10000)
            rated = stack.api("GET", "/api/v1/conversations", params={"app": "mem", "rating": "down"}).json()
            assert [e["message"] for e in rated] == ["What is my cat called?"]

            refused = browser.new_page()
            refused.goto(other.origin + "/index.html")
            refused.locator("#stackyard-widget-frame").wait_for(timeout=10000)   # the loader ran …
            refused.wait_for_timeout(2000)
            inner = refused.frame_locator("#stackyard-widget-frame").locator("#message")
            assert inner.count() == 0                            # … but Chromium would not show the chat there
        finally:
            browser.close()
    policy = httpx.get(f"{stack.base_url}/widget/mem").headers["content-security-policy"]
    assert f"frame-ancestors 'self' {allowed.origin}" in policy and other.origin not in policy
    broad = new_key(stack, name="every app")
    answer = httpx.post(f"{stack.base_url}/v1/chat/completions", timeout=30, headers={
        "Authorization": f"Bearer {broad}", "X-Stackyard-Widget": "1"},
        json={"model": "mem", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 403 and "scoped to app 'mem' alone" in answer.text
    # Visitors sharing the widget's key never see each other's conversations.
    mine = httpx.post(f"{stack.base_url}/v1/chat/completions", timeout=30, headers={
        "Authorization": f"Bearer {key}", "X-Stackyard-Widget": "1", "X-Stackyard-Visitor": "a" * 32},
        json={"model": "mem", "messages": [{"role": "user", "content": "secret"}]}).json()
    theirs = httpx.get(f"{stack.base_url}/api/v1/apps/mem/conversations/{mine['conversation_id']}", headers={
        "Authorization": f"Bearer {key}", "X-Stackyard-Visitor": "b" * 32})
    assert theirs.status_code == 404 and "secret" not in theirs.text
    assert httpx.get(f"{stack.base_url}/api/v1/apps/mem/conversations/{mine['conversation_id']}", headers={
        "Authorization": f"Bearer {key}", "X-Stackyard-Visitor": "a" * 32}).json()["exchanges"][0]["message"] == "secret"
