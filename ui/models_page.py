"""What models this installation can use, in the browser: ``/models``.

Local model folders (mapped names, model roots, the Hugging Face cache, the bundled MiniLM), OpenAI-compatible
servers (configured, or a local Ollama found where it listens) with a connection test, the provider keys that
are set, and the generator a new chat workflow gets. Handlers are plain functions (tested without a browser).
"""

from __future__ import annotations

import gradio as gr
from fastapi import FastAPI

from nodes import models
from stackyard.settings import get_settings
from ui.pages import mount_page

PATH = "/models"
LOCAL_HEADERS = ["name", "kind", "source", "folder"]
SERVER_HEADERS = ["name", "base URL", "found by", "reachable", "models", "error"]


def _server_row(server: models.Server) -> list:
    return [server.name, server.url, server.source, "yes" if server.reachable else "no",
            ", ".join(server.models[:20]) + (" …" if len(server.models) > 20 else ""), server.error or ""]


def summary(default: dict | None, keys: list[str]) -> str:
    if default is None:
        return f"⚠️ {models.NO_GENERATOR}"
    params = default["init_parameters"]
    where = f" at `{params['api_base_url']}`" if "api_base_url" in params else ""
    keys_line = f" Provider keys set: {', '.join(keys)}." if keys else ""
    return (f"✅ New chat workflows answer with `{params['model']}`{where} "
            f"({default['type'].rsplit('.', 1)[-1]}, from {default['from']}).{keys_line}")


def overview() -> tuple[list[list], list[list], str, dict]:
    """Local models, servers, the summary line and the server picker's choices."""
    found = models.inventory(get_settings())
    names = [s.name for s in found.servers]
    return ([[m.name, m.kind, m.source, m.path] for m in found.local], [_server_row(s) for s in found.servers],
            summary(found.default_generator, found.keys), gr.update(choices=names, value=names[0] if names else None))


def test_connection(name: str | None) -> str:
    if not name:
        return "⚠️ Pick a server first (servers come from STACKYARD_LLM_SERVERS, or a local Ollama)."
    settings = get_settings()
    server = models.server_named(settings, name)
    if server is None:
        return f"⚠️ {models.unknown_server(settings, name)}"
    models.probe(server)
    if not server.reachable:
        return f"⚠️ '{name}' did not answer at {server.url} ({server.error})."
    listed = ", ".join(server.models[:10]) or "no models"
    return f"✅ '{name}' answered in {server.latency_ms:g} ms with {len(server.models)} model(s): {listed}."


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard models") as page:
        gr.Markdown("## Models\nWhat generators and embedders can use on this installation right now. Put a model's "
                    "name (or folder) in a node's `model`, or a server's base URL in a generator's `api_base_url`.")
        status = gr.Markdown(elem_id="models-summary")
        gr.Markdown("### On this machine")
        local = gr.Dataframe(headers=LOCAL_HEADERS, interactive=False, elem_id="local-models")
        gr.Markdown("### OpenAI-compatible servers")
        servers = gr.Dataframe(headers=SERVER_HEADERS, interactive=False, elem_id="model-servers")
        with gr.Row():
            picked = gr.Dropdown(label="Server", choices=[], elem_id="test-server")
            test_btn = gr.Button("Test connection", variant="primary", elem_id="test-connection")
            refresh_btn = gr.Button("Refresh")
        result = gr.Markdown(elem_id="test-result")
        page.load(overview, outputs=[local, servers, status, picked])
        refresh_btn.click(overview, outputs=[local, servers, status, picked])
        test_btn.click(test_connection, [picked], [result])
    return page


def mount_models(app: FastAPI) -> None:
    mount_page(app, build(), PATH)
