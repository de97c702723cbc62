"""The models page (``/models``) in Debian's Chromium against a real web server: a model folder the test made
and the in-test OpenAI-compatible server are listed, and the server's connection test answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import expect, sync_playwright

from tests.support.editor_browser import dataframe_rows, launch, shot
from tests.support.openai_server import ChatServer
from tests.support.stack import TINY, Stack, free_port, process_stack

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
WAIT = 60_000  # ms


@pytest.fixture(scope="module")
def models_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[tuple[Stack, ChatServer, Path]]:
    root = tmp_path_factory.mktemp("models-page")
    roots = root / "models"
    roots.mkdir()
    (roots / "tiny-chat").symlink_to(tiny_model, target_is_directory=True)
    with ChatServer(models=("llama3", "qwen2.5")) as server:
        gen = process_stack("embedded", root, tiny_model, tiny_model)
        stack = next(gen)
        stack.extra_env.update({"STACKYARD_MODEL_ROOTS": str(roots), "STACKYARD_LLM_SERVERS": json.dumps(
            {"gateway": server.base_url}), "STACKYARD_OLLAMA_URL": f"http://127.0.0.1:{free_port()}",
            "HF_HUB_CACHE": str(root / "empty-cache")})
        stack.start_web()
        yield stack, server, tiny_model
        for _ in gen:
            pass


def test_models_page_lists_a_local_folder_and_a_server_and_tests_the_connection(models_stack):
    stack, server, tiny_model = models_stack
    with sync_playwright() as pw:
        browser = launch(pw)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT)
            page.goto(f"{stack.base_url}/models", wait_until="domcontentloaded")  # the bare path, as links write it
            expect(page.locator("#models-summary")).to_contain_text("New chat workflows answer with llama3")
            expect(page.locator("#local-models")).to_contain_text(str(tiny_model.resolve()))
            local = {row[0]: row[1:3] for row in dataframe_rows(page, "local-models")}
            assert local[str(tiny_model.resolve())] == ["generator", "model root"]
            assert local[TINY] == ["generator", "model path"]  # the test stack maps this name to the folder
            assert local["sentence-transformers/all-MiniLM-L6-v2"] == ["embedder", "bundled"]
            [gateway] = dataframe_rows(page, "model-servers")
            assert gateway[:5] == ["gateway", server.base_url, "configured", "yes", "llama3, qwen2.5"]
            page.locator("#test-connection").click()
            expect(page.locator("#test-result")).to_contain_text("'gateway' answered in", timeout=WAIT)
            expect(page.locator("#test-result")).to_contain_text("2 model(s): llama3, qwen2.5")
            shot(page, "models")
        finally:
            browser.close()
