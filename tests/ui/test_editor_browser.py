"""The editor in Debian's Chromium against real processes: `stackyard web` and a worker on the embedded broker.

One user story per test, screenshots in test-artifacts/: build a workflow from the palette, have an
incompatible edge refused, edit a prompt (its variables become ports), see validation errors on the right
node, undo/redo a delete, save, reload and find it, run it on the worker and open a node's output.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from playwright.sync_api import Page, expect

from stackyard.settings import Settings
from tests.support.editor_browser import (
    LOCAL_LLM,
    PROMPT,
    TEXT_EMBEDDER,
    center,
    click_node,
    connect,
    drag_from_palette,
    edge,
    node,
    open_editor,
    port,
    shot,
    wait_ready,
)
from tests.support.stack import Stack, model_paths_env

pytestmark = [pytest.mark.integration, pytest.mark.browser, pytest.mark.slow]
DEFAULT_LLM = "Qwen/Qwen2.5-0.5B-Instruct"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[Stack]:
    root = tmp_path_factory.mktemp("editor")
    data = root / "data"
    stack = Stack(root=root, database_url=f"sqlite:///{data / 'stackyard.db'}", broker_url=f"sqla+sqlite:///{data / 'broker.db'}",
                  extra_env={**model_paths_env({DEFAULT_LLM: tiny_model}), "STACKYARD_EDITOR_WARM_UP": "true"})
    try:
        stack.start_web()
        stack.start_worker(queues="cpu,gpu", name="editor-worker")
        yield stack
    finally:
        stack.stop()


def workflows_dialog(page: Page):
    dialog = page.locator(".sy-wf-modal")
    if not dialog.is_visible():  # it opens by itself when there is no workflow yet
        page.locator('[data-action="workflows"]').click()
    return dialog


def create_blank(page: Page, name: str) -> None:
    dialog = workflows_dialog(page)
    dialog.get_by_label("New workflow name").fill(name)
    dialog.locator('[data-template=""]').click()
    dialog.locator('[data-action="create"]').click()
    expect(page.locator(".sy-wf-switch")).to_contain_text(name)


def canvas_point(page: Page, fx: float, fy: float) -> tuple[float, float]:
    box = page.locator(".sy-viewport").bounding_box()
    return box["x"] + box["width"] * fx, box["y"] + box["height"] * fy


def test_build_validate_save_reload_and_run(stack: Stack, page: Page):
    open_editor(page, stack.base_url)
    create_blank(page, "haiku")
    shot(page, "01-blank")

    # Drag three nodes from the palette.
    drag_from_palette(page, PROMPT, *canvas_point(page, 0.2, 0.35))
    drag_from_palette(page, LOCAL_LLM, *canvas_point(page, 0.62, 0.35))
    drag_from_palette(page, TEXT_EMBEDDER, *canvas_point(page, 0.2, 0.75))
    for name in ("prompt", "local_llm", "text_embedder"):
        expect(node(page, name)).to_be_visible()

    # Ports say what they carry in plain words on hover, with their Haystack type.
    page.mouse.move(*center(port(page, "prompt", "prompt", "out")))
    expect(page.locator(".sy-tip.sy-show .sy-tip-words")).to_have_text("text")   # in plain words, and
    expect(page.locator(".sy-tip.sy-show .sy-tip-type")).to_have_text("str")    # the Haystack type

    # An incompatible connection is refused with Haystack's reason; a compatible one is drawn.
    connect(page, "text_embedder.embedding", "local_llm.messages")
    refusal = page.locator(".sy-toast.sy-refusal")
    expect(refusal).to_contain_text("embedding")
    expect(refusal).to_contain_text("messages")
    expect(edge(page, "text_embedder.embedding", "local_llm.messages")).to_have_count(0)
    shot(page, "02-refused")
    connect(page, "prompt.prompt", "local_llm.messages")
    expect(edge(page, "prompt.prompt", "local_llm.messages")).to_have_count(1)

    # Undo and redo a delete.
    click_node(page, "text_embedder")
    page.keyboard.press("Delete")
    expect(node(page, "text_embedder")).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(node(page, "text_embedder")).to_have_count(1)
    page.keyboard.press("Control+Shift+z")
    expect(node(page, "text_embedder")).to_have_count(0)

    # Validation pins "nothing feeds prompt.question" on the prompt node and its port; the list jumps to it.
    page.locator('[data-action="validate"]').click()
    expect(node(page, "prompt")).to_have_class(re.compile("sy-has-issue"))
    expect(node(page, "prompt").locator('.sy-port.sy-port-issue[data-port="question"]')).to_have_count(1)
    expect(node(page, "local_llm")).not_to_have_class(re.compile("sy-has-issue"))
    issue = page.locator('.sy-issue[data-node="prompt"]')
    expect(issue).to_contain_text("question")
    shot(page, "03-validation")
    issue.click()
    expect(node(page, "prompt")).to_have_class(re.compile("sy-selected"))

    # A model this machine does not have is flagged on its node before anything runs (a warning: it would save).
    # Optional inputs are folded away until asked for.
    llm_ports = node(page, "local_llm").locator(".sy-port.sy-in")
    shown = llm_ports.count()
    more = node(page, "local_llm").locator(".sy-more")
    expect(more).to_contain_text(re.compile(r"\+ \d+ optional input"))
    more.click()
    expect(node(page, "local_llm").locator(".sy-more")).to_have_text("− hide optional inputs")
    assert llm_ports.count() > shown
    node(page, "local_llm").locator(".sy-more").click()
    expect(llm_ports).to_have_count(shown)
    click_node(page, "local_llm")
    # Parameters read in plain words, Haystack's name on hover, and say what they do (the component's docstring).
    kwargs_field = page.locator('.sy-field[data-param="generation_kwargs"]')
    expect(kwargs_field.locator(".sy-label")).to_contain_text("Generation settings")
    expect(kwargs_field.locator(".sy-label")).to_have_attribute("title", re.compile("^generation_kwargs"))
    expect(kwargs_field.locator(".sy-param-doc")).to_contain_text("generation")
    model = page.locator('.sy-field[data-param="model"]').locator("input, textarea").first
    chosen = model.input_value()
    model.fill("acme/not-on-this-machine")
    model.blur()
    page.locator('[data-action="validate"]').click()
    expect(page.locator('.sy-issue[data-node="local_llm"]')).to_contain_text(
        "no model 'acme/not-on-this-machine' on this machine")
    expect(node(page, "local_llm")).to_have_class(re.compile("sy-has-issue"))
    click_node(page, "local_llm")  # a node clicked while the problems list shows opens the inspector
    expect(page.locator('.sy-tabs [data-tab="inspect"]')).to_have_class(re.compile("sy-active"))
    model.fill(chosen)
    model.blur()
    click_node(page, "prompt")

    # Edit the template: its variables become the node's input ports as it is typed.
    template = page.locator('.sy-field[data-param="template"] textarea')
    template.fill("Write a haiku about {{ topic }}.")
    expect(node(page, "prompt").locator('.sy-port.sy-in[data-port="topic"]')).to_have_count(1)
    expect(node(page, "prompt").locator('.sy-port.sy-in[data-port="question"]')).to_have_count(0)
    template.blur()
    page.get_by_label("Workflow input for prompt.topic").fill("topic")
    page.keyboard.press("Enter")
    click_node(page, "local_llm")
    page.get_by_label("Workflow output for local_llm.replies").fill("answer")
    page.keyboard.press("Enter")
    expect(node(page, "local_llm").locator(".sy-io-chip")).to_contain_text("answer")
    page.locator('[data-action="validate"]').click()
    expect(page.locator(".sy-ok-banner")).to_be_visible()
    shot(page, "04-edited")

    # Save a version with a note, reload the page and find it.
    page.keyboard.press("Control+s")
    page.get_by_label("Version note").fill("haiku prompt")
    page.keyboard.press("Enter")
    expect(page.locator(".sy-toast")).to_contain_text(["Saved version 1"])
    toast, canvas = page.locator(".sy-toast").first.bounding_box(), page.locator(".sy-viewport").bounding_box()
    assert toast["x"] >= canvas["x"] + canvas["width"], (toast, canvas)  # over the side panel, not the ports
    expect(page.locator(".sy-version-label")).to_have_text("v1")
    page.reload()
    wait_ready(page)
    expect(page.locator(".sy-wf-switch")).to_contain_text("haiku")
    expect(edge(page, "prompt.prompt", "local_llm.messages")).to_have_count(1)
    click_node(page, "prompt")
    expect(page.locator('.sy-field[data-param="template"] textarea')).to_have_value("Write a haiku about {{ topic }}.")
    page.locator('[data-tab="history"]').first.click()
    expect(page.locator('.sy-version[data-number="1"]')).to_contain_text("haiku prompt")
    shot(page, "05-reloaded")

    # Run it on the worker and watch every node turn done; open the model node's output.
    page.locator('[data-action="open-run"]').click()
    page.locator('.sy-field[data-input="topic"] textarea').fill("otters")
    page.locator('[data-action="run"]').click()
    for name in ("prompt", "local_llm"):
        expect(node(page, name).locator('.sy-node-status[data-state="done"]')).to_be_visible(timeout=60_000)
    expect(page.locator(".sy-progress")).to_have_attribute("data-state", "succeeded")
    expect(page.locator('.sy-output[data-output="answer"]')).to_contain_text("the answer is stackyard")
    shot(page, "06-run-done")
    node(page, "local_llm").locator(".sy-node-status").click()
    output = page.locator(".sy-output-modal")
    expect(output).to_contain_text("replies")
    expect(output).to_contain_text("the answer is stackyard")
    shot(page, "07-node-output")
    page.keyboard.press("Escape")
    expect(page.locator(".sy-run-item")).to_have_count(1)


def test_unfinished_work_survives_a_reload_as_a_draft_until_discarded(stack: Stack, page: Page):
    open_editor(page, stack.base_url)
    create_blank(page, "drafts")
    drag_from_palette(page, PROMPT, *canvas_point(page, 0.3, 0.4))
    expect(node(page, "prompt")).to_be_visible()       # a prompt whose 'question' nothing feeds: not savable yet
    page.locator('.sy-root[data-draft-saved]').wait_for(state="attached", timeout=30_000)
    expect(page.locator(".sy-version-label")).to_contain_text("draft kept")
    page.reload()
    wait_ready(page)
    expect(page.locator(".sy-wf-switch")).to_contain_text("drafts")
    expect(node(page, "prompt")).to_be_visible()       # the edit is still there
    expect(node(page, "prompt")).to_have_class(re.compile("sy-has-issue"))  # with its problem
    expect(page.locator(".sy-version-label")).to_contain_text("not saved yet")
    shot(page, "12-draft-after-reload")
    page.locator('[data-action="discard-draft"]').click()
    page.locator(".sy-modal").get_by_role("button", name="Discard").click()
    expect(node(page, "prompt")).to_have_count(0)
    expect(page.locator('[data-action="discard-draft"]')).to_be_hidden()
    page.reload()
    wait_ready(page)
    expect(page.locator(".sy-node")).to_have_count(0)


def test_the_run_list_shows_the_open_workflows_runs_only(stack: Stack, page: Page):
    from tests.support.specs import greet

    alpha = stack.create("alpha-runs", greet())
    stack.create("beta-runs", greet())
    assert stack.start_run("alpha-runs", {"name": "Ada"}, wait=60)["state"] == "succeeded"
    # Alpha's run list arrives late (a slow network), after beta has been opened in its place.

    def slow(route):
        page.wait_for_timeout(1500)
        route.continue_()

    page.route(f"**/api/v1/runs?workflow_id={alpha['id']}*", slow)
    page.goto(f"{stack.base_url}/?workflow={alpha['id']}")
    wait_ready(page)
    dialog = workflows_dialog(page)
    with page.expect_response(lambda response: alpha["id"] in response.url and "/api/v1/runs" in response.url):
        dialog.locator('.sy-wf-row[data-name="beta-runs"] .sy-wf-name').click()
        expect(page.locator(".sy-wf-switch")).to_contain_text("beta-runs")
    page.wait_for_timeout(300)                                  # what alpha's late answer would do, it does now
    expect(page.locator(".sy-run-item")).to_have_count(0)
    page.unroute(f"**/api/v1/runs?workflow_id={alpha['id']}*")


def node_top(page: Page, name: str) -> float:
    return node(page, name).bounding_box()["y"]


def test_canvas_tools_versions_import_and_files(stack: Stack, page: Page, tmp_path: Path):
    open_editor(page, stack.base_url)
    dialog = workflows_dialog(page)
    dialog.get_by_label("New workflow name").fill("summaries")
    dialog.locator('[data-template="summarize"]').click()
    dialog.locator('[data-action="create"]').click()
    expect(node(page, "prompt")).to_be_visible()
    expect(node(page, "llm")).to_be_visible()
    expect(page.locator(".sy-version-label")).to_have_text("v1")

    # Copy/paste keeps the edges among the copied nodes; undo takes it back.
    page.locator(".sy-viewport").click(position={"x": 30, "y": 400})
    page.keyboard.press("Control+a")
    page.keyboard.press("Control+c")
    page.keyboard.press("Control+v")
    expect(page.locator(".sy-node")).to_have_count(4)
    expect(edge(page, "prompt_2.prompt", "llm_2.messages")).to_have_count(1)
    page.keyboard.press("Control+z")
    expect(page.locator(".sy-node")).to_have_count(2)

    # Move a node away, then auto-layout puts the chain back on one row.
    x, y = center(node(page, "llm").locator(".sy-node-name"))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y + 180, steps=8)
    page.mouse.up()
    assert abs(node_top(page, "llm") - node_top(page, "prompt")) > 100
    page.keyboard.press("l")
    page.wait_for_function("() => { const a = document.querySelector('.sy-node[data-name=prompt]').getBoundingClientRect();"
                           " const b = document.querySelector('.sy-node[data-name=llm]').getBoundingClientRect();"
                           " return Math.abs(a.top - b.top) < 2; }")

    # Select and delete an edge; multi-select with Shift+click and with a Shift+drag box.
    line = edge(page, "prompt.prompt", "llm.messages").locator(".sy-edge-line")
    page.mouse.click(*center(line))
    expect(edge(page, "prompt.prompt", "llm.messages")).to_have_class(re.compile("sy-selected"))
    page.keyboard.press("Delete")
    expect(edge(page, "prompt.prompt", "llm.messages")).to_have_count(0)
    page.keyboard.press("Control+z")
    expect(edge(page, "prompt.prompt", "llm.messages")).to_have_count(1)
    click_node(page, "prompt")
    page.keyboard.down("Shift")
    click_node(page, "llm")
    page.keyboard.up("Shift")
    expect(page.locator(".sy-node.sy-selected")).to_have_count(2)
    expect(page.locator(".sy-tab-body[data-tab=inspect]")).to_contain_text("2 nodes")
    page.keyboard.press("Escape")
    expect(page.locator(".sy-node.sy-selected")).to_have_count(0)
    a, b = node(page, "prompt").bounding_box(), node(page, "llm").bounding_box()
    page.keyboard.down("Shift")
    page.mouse.move(a["x"] - 30, a["y"] - 30)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] + 10, b["y"] + b["height"] + 10, steps=6)
    page.mouse.up()
    page.keyboard.up("Shift")
    expect(page.locator(".sy-node.sy-selected")).to_have_count(2)

    # A sticky note (N), zoom keys and zoom-to-fit.
    vx, vy = canvas_point(page, 0.5, 0.15)
    page.mouse.move(vx, vy)
    page.keyboard.press("n")
    page.keyboard.type("Keep summaries short")
    page.locator(".sy-viewport").click(position={"x": 20, "y": 500})
    expect(page.locator(".sy-note textarea")).to_have_value("Keep summaries short")
    page.keyboard.press("0")
    expect(page.locator(".sy-zoom-label")).to_have_text("100%")
    page.keyboard.press("+")
    expect(page.locator(".sy-zoom-label")).to_have_text("120%")
    page.locator('[data-action="fit"]').click()

    # Edit a param, save v2, see what changed, restore v1 (as v3).
    click_node(page, "llm")
    kwargs = page.locator('.sy-field[data-param="generation_kwargs"] textarea')
    kwargs.fill('{"max_new_tokens": 32, "do_sample": false}')
    kwargs.blur()
    page.keyboard.press("Control+s")
    page.get_by_label("Version note").fill("shorter")
    page.keyboard.press("Enter")
    expect(page.locator(".sy-version-label")).to_have_text("v2")
    page.locator('.sy-tabs [data-tab="history"]').click()
    v2 = page.locator('.sy-version[data-number="2"]')
    expect(v2).to_contain_text("shorter")
    expect(v2.locator(".sy-version-summary")).to_contain_text("1 param changed")
    v2.locator(".sy-version-summary").click()
    expect(v2.locator(".sy-diff")).to_contain_text("llm.generation_kwargs")
    shot(page, "08-history")
    page.locator('.sy-version[data-number="1"]').get_by_role("button", name="Restore").click()
    expect(page.locator(".sy-version-label")).to_have_text("v3")
    expect(page.locator(".sy-note")).to_have_count(0)
    # Any two versions compare, not only each with the one before: v3 restored v1, so they match.
    page.locator('.sy-tabs [data-tab="history"]').click()
    page.get_by_label("Compare from version").select_option("1")
    page.get_by_label("Compare to version").select_option("3")
    page.locator('[data-action="compare"]').click()
    expect(page.locator(".sy-compare-result")).to_contain_text("v1 → v3")
    expect(page.locator(".sy-compare-result")).to_contain_text("Nothing changed")
    page.get_by_label("Compare from version").select_option("3")
    page.get_by_label("Compare to version").select_option("2")
    page.locator('[data-action="compare"]').click()
    expect(page.locator(".sy-compare-result")).to_contain_text("llm.generation_kwargs")

    # Download the open version as Haystack YAML.
    href = page.locator('[data-action="download"]').get_attribute("href")
    assert href.endswith("/export?version=3")
    exported = page.request.get(stack.base_url + href)
    assert exported.ok and "haystack.components.builders.prompt_builder.PromptBuilder" in exported.text()

    # Import a Haystack YAML file as Haystack writes it (no inputs or outputs) with Hayhooks' streaming_components;
    # a version saved in the editor keeps what was inferred and declared. Then rename it, delete it.
    plain = yaml.safe_load(exported.text().replace("Summarize the following text", "Greet"))
    declared = {ref for refs in plain.pop("inputs").values() for ref in refs}
    plain.pop("outputs")
    yaml_file = tmp_path / "greeter.yaml"
    yaml_file.write_text(yaml.safe_dump({**plain, "streaming_components": ["llm"]}, sort_keys=False))
    page.locator('[data-action="workflows"]').click()
    dialog.get_by_label("Haystack YAML file").set_input_files(str(yaml_file))
    expect(dialog.get_by_label("Import as")).to_have_value("greeter")
    dialog.locator('[data-action="import"]').click()
    expect(page.locator(".sy-wf-switch")).to_contain_text("greeter")
    page.keyboard.press("Control+s")
    page.get_by_label("Version note").fill("as imported")
    page.keyboard.press("Enter")
    expect(page.locator(".sy-version-label")).to_have_text("v2")
    saved = stack.api("GET", "/api/v1/workflows/greeter/versions/2").json()["spec"]
    assert {ref for refs in saved["inputs"].values() for ref in refs} == declared
    assert "llm.replies" in saved["outputs"].values() and saved["streaming_components"] == ["llm"]
    page.locator('[data-action="workflows"]').click()
    row = dialog.locator('.sy-wf-row[data-name="greeter"]')
    row.get_by_role("button", name="Rename").click()
    dialog.get_by_label("New name").fill("greeter-renamed")
    page.keyboard.press("Enter")
    row = dialog.locator('.sy-wf-row[data-name="greeter-renamed"]')
    expect(row).to_be_visible()
    shot(page, "09-workflows")
    row.get_by_role("button", name="Delete").click()
    page.locator('.sy-modal [data-action="delete"]').click()
    expect(dialog.locator('.sy-wf-row[data-name="greeter-renamed"]')).to_have_count(0)
    page.keyboard.press("Escape")

    # Files for a run upload into the files root (the ingest template's FileSource input).
    page.locator('[data-action="workflows"]').click()
    dialog.get_by_label("New workflow name").fill("ingest docs")
    dialog.locator('[data-template="ingest"]').click()
    dialog.locator('[data-action="create"]').click()
    expect(node(page, "files")).to_be_visible()
    page.locator('[data-action="open-run"]').click()
    upload = tmp_path / "otters.txt"
    upload.write_text("Sea otters hold hands while they sleep.")
    page.get_by_label("Upload files for files").set_input_files(str(upload))
    chip = page.locator('.sy-field[data-input="files"] .sy-chip')
    expect(chip).to_contain_text("otters.txt")
    relative = chip.inner_text().replace("×", "").strip()
    assert (stack.files_root / relative).read_text() == "Sea otters hold hands while they sleep."
    shot(page, "10-files")

    # The writer's store is a collection picked from the vector store's, or named new; not a class path typed.
    from pymilvus import MilvusClient

    from nodes.stores import ensure_vector_store

    milvus = MilvusClient(uri=ensure_vector_store(Settings(data_dir=stack.data_dir, milvus_lite_port=stack.milvus_port)))
    milvus.create_collection("support_docs", dimension=4)
    milvus.close()
    assert stack.api("POST", "/api/v1/knowledge-bases", json={"name": "handbook"}).status_code == 201
    page.keyboard.press("Escape")
    click_node(page, "writer")
    store = page.get_by_label("Document store collection")
    expect(store.locator("option", has_text="support_docs")).to_have_count(1)
    store.select_option("support_docs")
    store.select_option("New collection…")
    page.get_by_label("New collection name").fill("otters")
    page.get_by_label("New collection name").blur()
    spec = page.evaluate("() => window.Stackyard.editor.graph.toSpec()")
    assert spec["components"]["writer"]["init_parameters"]["document_store"]["init_parameters"]["collection_name"] == "otters"
    # or a knowledge base, by name (no JSON): its generation's collection is not offered by its own name
    expect(store.locator("option", has_text="Knowledge base: handbook (empty)")).to_have_count(1)
    store.select_option(label="Knowledge base: handbook (empty)")
    spec = page.evaluate("() => window.Stackyard.editor.graph.toSpec()")
    assert spec["components"]["writer"]["init_parameters"]["document_store"] == {
        "type": "knowledge_base", "init_parameters": {"name": "handbook"}}
    click_node(page, "files")
    click_node(page, "writer")                          # drawn again from the spec: the base is what is picked
    expect(page.get_by_label("Document store collection")).to_have_value("\u0000kb:handbook")

    # The ingest template that writes through a knowledge base picks the base from a list as well
    assert stack.api("POST", "/api/v1/knowledge-bases", json={"name": "manuals"}).status_code == 201
    page.locator('[data-action="workflows"]').click()
    dialog.get_by_label("New workflow name").fill("add to manuals")
    dialog.locator('[data-template="ingest_knowledge"]').click()
    dialog.locator('[data-action="create"]').click()
    click_node(page, "knowledge")
    base = page.get_by_label("Knowledge base", exact=True)
    expect(base.locator("option", has_text="manuals (empty)")).to_have_count(1)
    base.select_option("manuals")
    spec = page.evaluate("() => window.Stackyard.editor.graph.toSpec()")
    assert spec["components"]["knowledge"]["init_parameters"] == {"knowledge_base": "manuals"}


def node_positions(page: Page) -> dict[str, tuple[float, float]]:
    """Each node's top-left corner on screen, by name."""
    return {name: (x, y) for name, x, y in page.evaluate(
        "() => [...document.querySelectorAll('.sy-node')].map(n => { const r = n.getBoundingClientRect();"
        " return [n.dataset.name, r.x, r.y]; })")}


def test_a_hundred_nodes_open_and_drag_together_and_undo_puts_them_back(stack: Stack, page: Page):
    # How fast they open and how smoothly they drag is measured in bench/, not asserted here.
    from tests.support.editor_specs import big_workflow

    created = stack.create("hundred", big_workflow(100))
    page.goto(f"{stack.base_url}/?workflow={created['id']}")
    page.locator('.sy-root[data-loads="1"]').wait_for(state="attached", timeout=30_000)
    expect(page.locator(".sy-node")).to_have_count(100)
    expect(page.locator(".sy-edge")).to_have_count(75)
    before = node_positions(page)
    page.keyboard.press("Control+a")
    x, y = center(node(page, "clean_0").locator(".sy-node-name"))
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 120, y + 80, steps=20)
    page.mouse.up()
    expect(page.locator(".sy-version-label")).to_contain_text(re.compile("unsaved changes|draft kept"))
    after = node_positions(page)
    moved = {name: (round(after[name][0] - bx), round(after[name][1] - by)) for name, (bx, by) in before.items()}
    assert len(moved) == 100 and set(moved.values()) == {(120, 80)}, moved   # the whole selection, by the pointer
    page.keyboard.press("Control+z")
    expect(page.locator(".sy-version-label")).to_have_text("v1")
    back = node_positions(page)
    assert all(abs(back[n][0] - bx) < 1 and abs(back[n][1] - by) < 1 for n, (bx, by) in before.items())
    shot(page, "11-hundred-nodes")


def test_login_required_when_an_admin_password_is_set(tmp_path: Path, browser):
    data = tmp_path / "data"
    guarded = Stack(root=tmp_path, database_url=f"sqlite:///{data / 'stackyard.db'}",
                    broker_url=f"sqla+sqlite:///{data / 'broker.db'}", extra_env={"STACKYARD_ADMIN_PASSWORD": "s3cret-pass"})
    try:
        guarded.start_web()
        assert guarded.api("GET", "/api/v1/workflows").status_code == 401
        context = browser.new_context(viewport={"width": 1200, "height": 800})
        page = context.new_page()
        page.goto(guarded.base_url + "/")
        expect(page).to_have_url(re.compile(r"/login\?next=%2F"))
        page.get_by_label("Password").fill("wrong")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".err")).to_have_text("Wrong password.")
        shot(page, "12-login")
        page.get_by_label("Password").fill("s3cret-pass")
        page.get_by_role("button", name="Log in").click()
        wait_ready(page)
        expect(page.locator(".sy-wf-modal")).to_be_visible()  # no workflow yet: the workflows dialog opens
        page.keyboard.press("Escape")
        page.locator(".sy-logout").click()
        expect(page).to_have_url(re.compile(r"/login"))
        context.close()
    finally:
        guarded.stop()
