"""The chat page of a published app: ``/chat/{slug}`` (a Gradio ChatInterface).

Replies stream token by token from the worker (the same token stream the OpenAI-compatible API reads, on Redis
and on the embedded broker alike, ``worker.streams``); when the app declares a sources output, the retrieved
documents are listed under the reply. The page is the app's public face, like a share link: it needs no API
key (publish only what may be seen).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import gradio as gr
from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from apps import chat, publishing
from runs.models import RunState
from stackyard.errors import StackyardError
from store.db import autocommit_scope
from ui.pages import mount_page

PATH = "/chat-app"
SOURCE_CHARS = 300


def _history_messages(history: list[dict[str, Any]], message: str) -> list[dict[str, Any]]:
    messages = [{"role": m.get("role"), "content": m.get("content") if isinstance(m.get("content"), str) else ""}
                for m in history if m.get("role") in ("user", "assistant")]
    return messages + [{"role": "user", "content": message}]


def format_sources(documents: list[dict[str, Any]]) -> str:
    if not documents:
        return ""
    lines = ["", "", "**Sources**"]
    for index, doc in enumerate(documents, 1):
        name = (doc.get("meta") or {}).get("file_path") or doc.get("id", "")[:12]
        text = (doc.get("content") or "").strip().replace("\n", " ")
        lines.append(f"{index}. *{name}* — {text[:SOURCE_CHARS]}{'…' if len(text) > SOURCE_CHARS else ''}")
    return "\n".join(lines)


async def respond(message: str, history: list[dict[str, Any]], request: gr.Request) -> AsyncIterator[str]:
    slug = request.query_params.get("app", "")
    try:
        messages = _history_messages(history, message)
        publication, run_id, slot = await run_in_threadpool(
            chat.open_run, slug, lambda app: chat.chat_inputs(app, messages), stream=True)
    except StackyardError as exc:
        yield f"⚠️ {exc}"
        return
    with slot:  # the page counts against the app's max concurrency like the API does
        async for text in _reply(publication, run_id):
            yield text


async def _reply(publication, run_id: str) -> AsyncIterator[str]:  # noqa: ANN001 - a Publication row
    reply, result = "", None
    try:
        async for item in chat.follow(run_id):
            if isinstance(item, str):
                reply += item
                yield reply
            else:
                result = item
    except chat.ReplyTimedOut as exc:
        yield f"{reply}\n\n⚠️ {exc}"
        return
    if result.state != RunState.SUCCEEDED:
        yield f"{reply}\n\n⚠️ The run {result.state.value}: {result.error}"
    else:
        yield chat.reply_text(publication, result.outputs) + format_sources(chat.sources(publication, result.outputs))


UNCHECKED = "This app went live without passing its publish check: its answers may fail."


def _warning(slug: str) -> str | None:
    """What visitors are told when the app went live unchecked. The reason stays on /apps and the admin API: it
    may name internal hosts, paths or run ids, and the page is public."""
    try:
        with autocommit_scope() as session:
            return UNCHECKED if publishing.get_publication(session=session, slug=slug).check_warning else None
    except StackyardError:
        return None


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard chat") as page:
        title = gr.Markdown("## Chat", elem_id="chat-title")
        gr.ChatInterface(respond, chatbot=gr.Chatbot(height=520, elem_id="chat-log"), fill_height=True)

        def heading(request: gr.Request) -> str:
            slug = request.query_params.get("app", "Chat")
            return f"## {slug}" + (f"\n\n> ⚠️ {warning}" if (warning := _warning(slug)) else "")

        page.load(heading, outputs=title)
    return page


def mount_chat(app: FastAPI) -> None:
    @app.get("/chat/{slug}", include_in_schema=False)
    def chat_page(slug: str) -> RedirectResponse:
        return RedirectResponse(f"{PATH}/?app={slug}")

    mount_page(app, build(), PATH)
