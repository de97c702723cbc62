"""The chat page of a published app: ``/chat/{slug}`` (a Gradio ChatInterface).

Replies stream token by token from the worker (the same token stream the OpenAI-compatible API reads, on Redis
and on the embedded broker alike, ``worker.streams``); when the app declares a sources output, the retrieved
documents are listed under the reply. The conversation is kept on the server (the app's memory policy decides
which turns the workflow sees) and belongs to the visitor (an opaque id in a cookie): opening the page again
shows the visitor's latest conversation with the app and goes on with it; clearing the log starts a new one.
Each reply can be rated with a thumbs up or down, which the logs show. The page is the app's public face, like a
share link: it needs no API key (publish only what may be seen).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import gradio as gr
from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from apps import chat, publishing
from conversations import threads
from runs.models import RunState
from stackyard.errors import StackyardError
from stackyard.settings import get_settings
from store.db import autocommit_scope, session_scope
from ui.pages import mount_page
from ui.widget import mount_widget

PATH = "/chat-app"
VISITOR_DAYS = 365
SOURCE_CHARS = 300


def format_sources(documents: list[dict[str, Any]]) -> str:
    if not documents:
        return ""
    lines = ["", "", "**Sources**"]
    for index, doc in enumerate(documents, 1):
        name = (doc.get("meta") or {}).get("file_path") or doc.get("id", "")[:12]
        text = (doc.get("content") or "").strip().replace("\n", " ")
        lines.append(f"{index}. *{name}* — {text[:SOURCE_CHARS]}{'…' if len(text) > SOURCE_CHARS else ''}")
    return "\n".join(lines)


VISITOR_COOKIE = "stackyard_visitor"


def _owner(request: gr.Request, state: dict[str, Any]) -> str:
    """Whose conversation this is: the visitor's cookie (set by ``/chat/{slug}``), else this page session's own
    id (a visitor who came straight to the page)."""
    visitor = request.cookies.get(VISITOR_COOKIE) if request is not None else None
    if not visitor or len(visitor) > 64:
        visitor = state.setdefault("visitor", secrets.token_hex(16))
    return threads.visitor_owner(visitor)


async def respond(message: str, history: list[dict[str, Any]], state: dict[str, Any] | None,
                  request: gr.Request) -> AsyncIterator[tuple[str, dict[str, Any]]]:
    """One turn of the page's conversation (kept on the server: the app's memory policy decides what the
    workflow sees); each reply's message id is kept for its thumbs up/down."""
    slug = request.query_params.get("app", "")
    state = dict(state or {})
    replies = state.setdefault("messages", [])
    messages = [{"role": "user", "content": message}]
    if not get_settings().conversations:     # nothing kept on the server: the page sends the conversation
        messages = [{"role": m.get("role"), "content": m.get("content") if isinstance(m.get("content"), str) else ""}
                    for m in history if m.get("role") in ("user", "assistant")] + messages
    try:
        try:
            turn, slot = await run_in_threadpool(
                chat.open_chat, slug, owner=_owner(request, state), conversation_id=state.get("conversation"),
                messages=messages, stream=True)
        except StackyardError as exc:
            if exc.field != "conversation_id" or not state.pop("conversation", None):
                raise
            turn, slot = await run_in_threadpool(      # deleted meanwhile (or by retention): a new one
                chat.open_chat, slug, owner=_owner(request, state), messages=messages, stream=True)
    except StackyardError as exc:
        replies.append(None)
        yield f"⚠️ {exc}", state
        return
    state["conversation"] = turn.conversation_id
    replies.append(turn.message_id)
    with slot:  # the page counts against the app's max concurrency like the API does
        async for text in _reply(turn.publication, turn.run_id):
            yield text, state


def rate(state: dict[str, Any] | None, request: gr.Request, liked: gr.LikeData) -> None:
    """A thumbs up or down on a reply of this page's conversation."""
    index = liked.index[0] if isinstance(liked.index, list | tuple) else liked.index
    replies = (state or {}).get("messages") or []
    message_id = replies[index // 2] if isinstance(index, int) and 0 <= index // 2 < len(replies) else None
    if message_id is None or liked.liked not in (True, False):
        return
    try:
        with session_scope() as session:
            threads.rate(session, message_id, rating=1 if liked.liked else -1, comment=None,
                         owner=_owner(request, dict(state or {})))
    except StackyardError:
        pass  # the conversation was deleted meanwhile: nothing to rate


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


def restore(state: dict[str, Any] | None, request: gr.Request) -> tuple[list[dict[str, str]], list[dict[str, str]],
                                                                       dict[str, Any]]:
    """The visitor's latest conversation with the app, shown again when the page opens (a reload keeps it): its
    turns in the log (for the page and for the chat's own history) and their message ids to rate them by. Nothing
    without the visitor's cookie, or with conversations off."""
    state = dict(state or {})
    slug, visitor = request.query_params.get("app", ""), request.cookies.get(VISITOR_COOKIE)
    if not get_settings().conversations or not visitor or len(visitor) > 64:
        return [], [], state
    with session_scope() as session:
        found = threads.latest(session, slug=slug, owner=threads.visitor_owner(visitor))
        if found is None:
            return [], [], state
        _, exchanges = threads.thread(session, found, last=RESTORED_TURNS)
        turns = [(e.id, e.message, _restored_reply(e)) for e in exchanges]
    messages = [m for _, asked, said in turns for m in ({"role": "user", "content": asked},
                                                         {"role": "assistant", "content": said})]
    state.update(conversation=found, messages=[message_id for message_id, _, _ in turns])
    return messages, messages, state


RESTORED_TURNS = 50


def _restored_reply(exchange: Any) -> str:
    if not exchange.ended:
        return "⏳ (still being answered: reload the page to see the reply)"
    if exchange.error:
        return f"⚠️ {exchange.error}"
    return (exchange.reply or "") + format_sources([{"id": source.get("id") or "", "content": source.get("content"),
                                                     "meta": {"file_path": source.get("file")}}
                                                    for source in exchange.sources or []])


def new_conversation(state: dict[str, Any] | None) -> dict[str, Any]:
    """The log was cleared: the next message starts a new conversation (the old one stays in the logs)."""
    return {key: value for key, value in (state or {}).items() if key == "visitor"}


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
        state = gr.State({})
        log = gr.Chatbot(height=520, elem_id="chat-log", feedback_options=("Like", "Dislike"))
        chat_ui = gr.ChatInterface(respond, chatbot=log, fill_height=True, additional_inputs=[state],
                                   additional_outputs=[state])
        log.like(rate, inputs=[state], outputs=None)
        log.clear(new_conversation, inputs=[state], outputs=[state])

        def heading(request: gr.Request) -> str:
            slug = request.query_params.get("app", "Chat")
            return f"## {slug}" + (f"\n\n> ⚠️ {warning}" if (warning := _warning(slug)) else "")

        page.load(heading, outputs=title)
        page.load(restore, inputs=[state], outputs=[log, chat_ui.chatbot_state, state])
    return page


def mount_chat(app: FastAPI) -> None:
    @app.get("/chat/{slug}", include_in_schema=False)
    def chat_page(slug: str, request: Request) -> RedirectResponse:
        """The page, with an opaque visitor id in a cookie: the visitor's conversations are theirs only."""
        response = RedirectResponse(f"{PATH}/?app={quote(slug)}")
        if not request.cookies.get(VISITOR_COOKIE):
            response.set_cookie(VISITOR_COOKIE, secrets.token_hex(16), max_age=VISITOR_DAYS * 86400, httponly=True,
                                samesite="lax", path="/", secure=request.url.scheme == "https")
        return response

    mount_page(app, build(), PATH)
    mount_widget(app)
