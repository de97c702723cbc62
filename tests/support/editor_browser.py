"""Driving the editor in Debian's Chromium: launch options and the gestures the tests repeat.

Pointer gestures go through ``page.mouse`` (real pointer events), never through the editor's JS API, so
what is tested is what a user does.
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Locator, Page

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
PROMPT = "haystack.components.builders.prompt_builder.PromptBuilder"
LOCAL_LLM = "haystack_integrations.components.generators.transformers.chat.chat_generator.TransformersChatGenerator"
TEXT_EMBEDDER = ("haystack_integrations.components.embedders.sentence_transformers."
                 "sentence_transformers_text_embedder.SentenceTransformersTextEmbedder")


def dataframe_rows(page: Page, elem_id: str) -> list[list[str]]:
    """The body cells of a Gradio Dataframe (``elem_id``), as the user reads them."""
    return page.locator(f"#{elem_id}").evaluate(
        """root => [...root.querySelectorAll('[role=row][data-index]')].map(
               row => [...row.querySelectorAll('[role=gridcell]')].map(cell => cell.innerText.trim()))""")


def launch(pw):
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)


def shot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"editor-{name}.png"
    page.screenshot(path=str(path))
    return path


READY_MS = 90_000
"""How long the editor may take to be ready: its first load builds the palette, which took 30 s and more while
three test processes shared this 2-core machine on a slow day (a whole `make test` ran 2.6x longer than two days
before, on the same commit)."""


def wait_ready(page: Page) -> None:
    page.locator('.sy-root[data-ready="1"]').wait_for(state="attached", timeout=READY_MS)


def open_editor(page: Page, url: str) -> None:
    page.goto(url)
    wait_ready(page)


def center(locator: Locator) -> tuple[float, float]:
    """The middle of what ``locator`` finds, once it is drawn: a node redrawn from the spec is briefly gone.
    (Not ``wait_for(state="visible")``: a straight edge's path has no height, which Playwright calls hidden.)"""
    locator.wait_for(state="attached")
    deadline = time.monotonic() + 10
    while (box := locator.bounding_box()) is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert box, f"{locator} is not on screen"
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def drag_from_palette(page: Page, type_: str, x: float, y: float) -> None:
    """Drag a palette entry onto the canvas at (x, y), page coordinates."""
    item = page.locator(f'.sy-pal-item[data-type="{type_}"]')
    item.scroll_into_view_if_needed()
    sx, sy = center(item)
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move(sx + 40, sy, steps=3)
    page.mouse.move(x, y, steps=8)
    page.mouse.up()


def node(page: Page, name: str) -> Locator:
    return page.locator(f'.sy-node[data-name="{name}"]')


def port(page: Page, name: str, socket: str, kind: str) -> Locator:
    return node(page, name).locator(f'.sy-port.sy-{kind}[data-port="{socket}"] .sy-dot')


def connect(page: Page, sender: str, receiver: str) -> None:
    """Drag from output port ``node.socket`` to input port ``node.socket``."""
    s_node, s_port = sender.split(".", 1)
    r_node, r_port = receiver.split(".", 1)
    sx, sy = center(port(page, s_node, s_port, "out"))
    rx, ry = center(port(page, r_node, r_port, "in"))
    page.mouse.move(sx, sy)
    page.mouse.down()
    page.mouse.move((sx + rx) / 2, (sy + ry) / 2, steps=6)
    page.mouse.move(rx, ry, steps=6)
    page.mouse.up()


def click_node(page: Page, name: str) -> None:
    x, y = center(node(page, name).locator(".sy-node-name"))
    page.mouse.click(x, y)


def edge(page: Page, sender: str, receiver: str) -> Locator:
    return page.locator(f'.sy-edge[data-id="{sender}->{receiver}"]')
