"""The guide at ``/help``: README.md rendered as one page, each section addressable (``/help#security-model``),
so the editor's and the pages' "?" links land on the paragraph that answers the question.

README.md is Stackyard's own file (trusted); it is rendered without raw HTML all the same. The page is built
once per process.

Example::

    mount_help(app)      # GET /help
"""

from __future__ import annotations

import functools
import html
import re
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from markdown_it import MarkdownIt

README = Path(__file__).resolve().parents[1] / "README.md"
PATH = "/help"
STYLE = """
body { margin: 0; font: 14px/1.55 Inter, system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d2433; background: #f7f8fa; }
header { display: flex; gap: 16px; align-items: center; padding: 10px 20px; background: #fff; border-bottom: 1px solid #e4e7ec; }
header b { font-size: 15px; } header a { color: #2f5bd3; text-decoration: none; }
.wrap { display: flex; max-width: 1200px; margin: 0 auto; }
nav { flex: none; width: 230px; padding: 20px; position: sticky; top: 0; align-self: flex-start; }
nav a { display: block; padding: 3px 0; color: #475467; text-decoration: none; } nav a:hover { color: #2f5bd3; }
main { flex: 1; min-width: 0; padding: 8px 32px 60px; background: #fff; border-left: 1px solid #e4e7ec; }
h1, h2 { scroll-margin-top: 12px; } h2 { border-top: 1px solid #e4e7ec; padding-top: 18px; margin-top: 30px; }
code { font: 12.5px ui-monospace, Menlo, Consolas, monospace; background: #f2f4f7; padding: 1px 4px; border-radius: 4px; }
pre { background: #101828; color: #e4e7ec; padding: 12px; border-radius: 8px; overflow-x: auto; }
pre code { background: none; color: inherit; padding: 0; }
table { border-collapse: collapse; font-size: 13px; } th, td { border: 1px solid #e4e7ec; padding: 4px 8px; text-align: left; }
"""


def slug(text: str) -> str:
    """``'The editor and published apps'`` → ``'the-editor-and-published-apps'`` (the anchor links use)."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


@functools.lru_cache(maxsize=1)
def page() -> str:
    if not README.is_file():
        return _document("<p>README.md is not installed next to this program; see the project's repository.</p>", [])
    parser = MarkdownIt("commonmark", {"html": False}).enable("table")
    tokens = parser.parse(README.read_text(encoding="utf-8"))
    sections = []
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and token.tag in ("h1", "h2", "h3"):
            title = tokens[index + 1].content
            token.attrSet("id", slug(title))
            if token.tag == "h2":
                sections.append((slug(title), title))
    return _document(parser.renderer.render(tokens, parser.options, {}), sections)


def _document(body: str, sections: list[tuple[str, str]]) -> str:
    toc = "".join(f'<a href="#{anchor}">{html.escape(title)}</a>' for anchor, title in sections)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Stackyard guide</title>'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head><body>'
            f'<header><b>Stackyard guide</b><a href="/">Editor</a><a href="/apps">Apps</a><a href="/jobs">Jobs</a><a href="/knowledge">Knowledge</a><a href="/evaluations">Evaluations</a>'
            f'<a href="/models">Models</a><a href="/docs">API reference</a></header>'
            f'<div class="wrap"><nav aria-label="Sections">{toc}</nav><main>{body}</main></div></body></html>')


def mount_help(app: FastAPI) -> None:
    @app.get(PATH, include_in_schema=False, response_class=HTMLResponse)
    def guide() -> HTMLResponse:
        return HTMLResponse(page())
