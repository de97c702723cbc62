"""The apps page (``/apps``) in Debian's Chromium against a real web server: a workflow without chat roles is
refused in the page's words; its roles are picked in the editor and saved with a version; then publishing
needs only a slug, and the version answers a test message on a worker before it goes live. Follow the chat page link, create a key and get a ready call with the real address, slug
and key."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.editor_browser import launch, open_editor, shot
from tests.support.specs import greet
from tests.support.stack import Stack, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
WAIT = 60_000  # ms


@pytest.fixture(scope="module")
def apps_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("apps-page")
    unused = root / "no-model"  # greet loads no model
    gen = process_stack("embedded", root, unused, unused)
    stack = next(gen)
    stack.start_web()
    worker = stack.start_worker(name="worker-apps")  # Publish sends a test message through the version first
    stack.create("greet", greet())
    yield stack
    stack.discard(worker)
    for _ in gen:
        pass


def test_publish_follow_the_chat_link_and_get_a_ready_call(apps_stack: Stack):
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1100})
            page.set_default_timeout(WAIT)
            page.goto(f"{apps_stack.base_url}/apps", wait_until="domcontentloaded")  # as the editor links it
            expect(page.get_by_label("Version (empty = newest)")).to_have_value("")  # the newest, not "0"

            def publish_greet() -> None:
                box = page.get_by_role("combobox", name="Workflow")
                box.click()
                page.get_by_role("option", name="greet", exact=True).click()
                page.locator("#publish-slug textarea, #publish-slug input").first.fill("greeter")
                page.locator("#publish-button").click()

            publish_greet()  # version 1 names no chat roles: the page says where to pick them, in its own words
            status = page.locator("#publish-status")
            expect(status).to_contain_text("Choose which workflow input is the chat message", timeout=WAIT)
            expect(status).to_contain_text("under Chat app")
            expect(status).to_contain_text("Message input")
            assert "--message" not in status.inner_text() and "metadata.stackyard" not in status.inner_text()

            # The roles are picked in the editor (Inspect, nothing selected) and saved with version 2.
            open_editor(page, f"{apps_stack.base_url}/?workflow=greet")
            page.locator('.sy-tab[data-tab="inspect"]').click()
            page.get_by_label("Chat user message").select_option("name")
            page.get_by_label("Chat reply").select_option("greeting")
            expect(page.locator(".sy-section", has_text="Chat app")).to_contain_text("give only a slug")
            with page.context.expect_page() as opened:  # its "?" opens the guide at the section that explains it
                page.get_by_label("Help: chat apps").click()
            guide = opened.value
            expect(guide).to_have_url(f"{apps_stack.base_url}/help#the-editor-and-published-apps")
            expect(guide.locator("#the-editor-and-published-apps")).to_be_in_viewport()
            guide.close()
            page.keyboard.press("Control+s")
            page.get_by_label("Version note").fill("chat roles")
            page.keyboard.press("Enter")
            expect(page.locator(".sy-toast")).to_contain_text(["Saved version 2"])
            saved = apps_stack.api("GET", "/api/v1/workflows/greet/versions/2").json()["spec"]
            assert saved["metadata"]["stackyard"]["chat"] == {"message": "name", "reply": "greeting"}

            # The editor's Jobs and Publish buttons open working pages (they once answered {"detail":"Not Found"}).
            with page.context.expect_page() as opened:
                page.locator('[data-action="jobs"]').click()
            jobs = opened.value
            expect(jobs.get_by_text("CSV / JSONL").first).to_be_visible()
            jobs.close()
            with page.context.expect_page() as opened:
                page.locator('[data-action="publish"]').click()
            page = opened.value
            page.set_default_timeout(WAIT)
            expect(page).to_have_url(f"{apps_stack.base_url}/apps/")
            page.locator("#publish-test-message textarea, #publish-test-message input").first.fill("Ada")
            publish_greet()  # workflow and slug only (and the message the check sends)
            # The test message runs on the worker first: allow it the time a loaded machine takes.
            expect(page.locator("#publish-status")).to_contain_text("'greeter' now serves greet version 2", timeout=WAIT)
            expect(page.locator("#publish-status")).to_contain_text('It answered "Ada" with: Hello Ada')
            link = page.locator("#apps-table a", has_text="/chat/greeter").first
            expect(link).to_have_attribute("href", "/chat/greeter")

            page.get_by_label("Name").fill("website widget")
            page.locator("#create-key").click()
            key = page.locator("#new-key textarea, #new-key input").first
            expect(page.locator("#key-snippet")).to_contain_text("/v1/chat/completions", timeout=WAIT)
            value = key.input_value()
            assert value.startswith("sy_")
            snippet = page.locator("#key-snippet").inner_text()
            assert f"Bearer {value}" in snippet and f"{apps_stack.base_url}/v1" in snippet
            assert 'model="greeter"' in snippet
            shot(page, "apps-key")
            page.goto(f"{apps_stack.base_url}/chat/greeter", wait_until="domcontentloaded")
            expect(page).to_have_url(f"{apps_stack.base_url}/chat-app/?app=greeter")
        finally:
            browser.close()
