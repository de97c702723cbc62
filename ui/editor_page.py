"""The editor page: one Gradio ``gr.HTML`` whose JS (``ui/static``) draws palette, canvas and panels.

The graph lives in the browser while it is edited (so dragging 100+ nodes never waits on Python); it goes
to Python whole, through the server functions in :mod:`ui.handlers`, only to check an edge, validate,
save or open. Runs go through the run API.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import gradio as gr

from ui.handlers import SERVER_FUNCTIONS

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/editor-static"
# Order matters only for readability: each file adds to window.Stackyard and nothing runs until mount().
SCRIPTS = ("util.js", "model.js", "canvas.js", "layout.js", "interact.js", "inspector.js", "agent_tools.js", "panels.js",
           "runs.js", "editor.js")
STYLES = ("canvas.css",)

# The editor takes the whole window; Gradio's own chrome (padding, footer) is hidden.
PAGE_CSS = """
body, gradio-app, .gradio-container { margin: 0 !important; padding: 0 !important; max-width: none !important; }
.gradio-container > .main, .gradio-container .wrap { padding: 0 !important; }
footer { display: none !important; }
#stackyard-editor { position: fixed; inset: 0; z-index: 10; }
"""


def _asset_version() -> str:
    digest = hashlib.sha256()
    for name in SCRIPTS + STYLES:
        digest.update((STATIC_DIR / name).read_bytes())
    return digest.hexdigest()[:12]


def head() -> str:
    version = _asset_version()
    links = "".join(f'<link rel="stylesheet" href="{STATIC_PATH}/{name}?v={version}">' for name in STYLES)
    scripts = "".join(f'<script src="{STATIC_PATH}/{name}?v={version}"></script>' for name in SCRIPTS)
    return links + scripts


JS_ON_LOAD = "window.Stackyard.mount(element, {server, trigger, props, watch, upload});"


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard", fill_height=True, fill_width=True) as page:
        gr.HTML(html_template='<div class="sy-root" data-loading="1"><div class="sy-boot">Loading the editor…</div></div>',
                js_on_load=JS_ON_LOAD, head=head(), server_functions=SERVER_FUNCTIONS, elem_id="stackyard-editor",
                apply_default_css=False, container=False, padding=False)
    return page
