"""Serving published apps: turn chat messages into a run of the pinned version and its outputs into a reply.

Shared by the REST app endpoint, the OpenAI-compatible API and the chat page; :func:`follow` is the one
reader of a reply as it streams, for the OpenAI stream and the page alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool

from apps import limits, publishing
from apps.models import Publication
from conversations import threads
from conversations.memory import STORED_TURNS_READ, Memory, remember
from runs import lifecycle as runs
from runs.models import Run
from stackyard.errors import StackyardError
from stackyard.settings import get_settings
from store.db import autocommit_scope, session_scope
from worker import streams
from worker.enqueue import enqueue_new
from workflows.execute import CHAT_ROLES, MAX_HISTORY_MESSAGES
from workflows.spec import split_socket

REPLY_TIMEOUT_SECONDS = 300.0
POLL_SECONDS = 0.05


class BadChatRequest(StackyardError):
    status = 400


def message_text(content: Any) -> str:
    """OpenAI message content: a string or a list of parts (text parts are joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part["text"] for part in content
                       if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str))
    return ""


def split_messages(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, str]]]:
    """OpenAI-style ``messages`` as (the new user message, the history before it as {role, content}); a 400
    naming the message for a role a chat history cannot hold (``developer`` counts as ``system``)."""
    if not messages:
        raise BadChatRequest("messages must hold at least one message with role 'user'.", field="messages")
    if len(messages) > MAX_HISTORY_MESSAGES + 1:
        raise BadChatRequest(f"messages holds {len(messages):,} messages; at most {MAX_HISTORY_MESSAGES:,}. Keep a "
                             "conversation id and send only the new message: the app remembers the rest.",
                             field="messages")
    last = messages[-1]
    if last.get("role") != "user":
        raise BadChatRequest(f"The last message must have role 'user', not '{str(last.get('role'))[:20]}'.",
                             field="messages")
    history = []
    for index, message in enumerate(messages[:-1]):
        role = "system" if message.get("role") == "developer" else message.get("role")
        if role not in CHAT_ROLES:
            raise BadChatRequest(f"messages[{index}] has role '{str(role)[:20]}'; a chat history holds system, user "
                                 "and assistant messages.", field=f"messages[{index}]")
        history.append({"role": role, "content": message_text(message.get("content"))})
    return message_text(last.get("content")), history


def chat_inputs(publication: Publication, message: str, history: list[dict[str, str]] | None = None) -> dict[str,
                                                                                                         Any]:
    """A chat turn as the inputs of the app's workflow: the message, and the history when it declares one."""
    inputs: dict[str, Any] = {publication.message_input: message}
    if publication.history_input:
        inputs[publication.history_input] = history or []
    return inputs


@dataclass(frozen=True)
class Turn:
    """A chat turn under way: its app, its run, and where it is logged (the conversation and the message)."""

    publication: Publication
    run_id: str
    conversation_id: str | None     # None: conversations are not kept (STACKYARD_CONVERSATIONS=false)
    message_id: str | None


def open_chat(slug: str, *, owner: str, messages: list[dict[str, Any]], conversation_id: str | None = None,
              stream: bool) -> tuple[Turn, contextlib.ExitStack]:
    """Ask app ``slug`` the last of ``messages`` as ``owner``: in their conversation ``conversation_id`` (its
    stored turns are the history; earlier ``messages`` are ignored) or, without one, with ``messages`` before it
    as the history in a new conversation. The history is cut by the app's memory policy; the run and the turn's
    log row are written in one transaction. Returns the turn and the concurrency slot still held (as
    :func:`open_run`)."""
    keep = get_settings().conversations
    if conversation_id is not None and not keep:
        raise BadChatRequest("This installation keeps no conversations (STACKYARD_CONVERSATIONS=false): send the "
                             "whole conversation as messages, without a conversation id.", field="conversation_id")
    with contextlib.ExitStack() as held:
        with autocommit_scope() as session:          # reads: the app, and the conversation so far
            publication = publishing.get_publication(session=session, slug=slug)   # an unknown app: 404 first
            message, given = split_messages(messages)
            info = runs.version_info(session, publication.version_id)
            memory = Memory.model_validate(publication.memory or {})
            history, earlier = given, None
            if conversation_id is not None:
                wanted = (STORED_TURNS_READ if memory.mode == "tokens" else memory.turns) \
                    if publication.history_input else 0
                history = threads.history(session, conversation_id, slug=slug, owner=owner, turns=wanted,
                                          reply_output=publication.reply_output)
                if memory.mode == "summary" and publication.history_input:
                    earlier = threads.earlier(session, conversation_id, kept=memory.turns)
            held.enter_context(limits.concurrency_slot(slug, publication.max_concurrency))
            session.expunge(publication)
        summary = None
        if publication.history_input:
            history, summary = remember(history, memory, earlier)   # a summary is an LLM call: no session held
        inputs = chat_inputs(publication, message, history if publication.history_input else None)
        stream_node = split_socket(info.spec.outputs[publication.reply_output])[0] if stream else None
        logged: dict[str, str] = {}
        if keep and summary is None and threads.turns_in_one_statement():
            # The run and the turn's log row in one statement (one round trip, in autocommit).
            with autocommit_scope() as session:
                run = runs.prepare_run(session, workflow_ref=None, inputs=inputs, version_id=publication.version_id,
                                       stream_node=stream_node)
                logged["conversation"], logged["message"] = runs.write_run(session, lambda: threads.start_turn(
                    session, run, conversation_id, slug=slug, owner=owner, message=message, version=info.number,
                    reply_output=publication.reply_output, sources_output=publication.sources_output), slug)
        else:
            # A kept turn writes its run and its log row in one transaction; otherwise one INSERT in autocommit.
            with session_scope() if keep else autocommit_scope() as session:

                def log_turn(run: Run) -> None:
                    logged["conversation"], logged["message"] = threads.log_turn(
                        session, conversation_id, slug=slug, owner=owner, message=message, run_id=run.id,
                        version_id=info.id, version=info.number, reply_output=publication.reply_output,
                        sources_output=publication.sources_output, summary=summary)

                run = runs.create_run(session=session, workflow_ref=None, inputs=inputs,
                                      version_id=publication.version_id, stream_node=stream_node,
                                      also=log_turn if keep else None)
        enqueue_new(run)
        return Turn(publication, run.id, logged.get("conversation"), logged.get("message")), held.pop_all()


def open_run(slug: str, inputs: dict[str, Any]) -> tuple[str, contextlib.ExitStack]:
    """Queue a run of app ``slug``'s pinned version with ``inputs`` as given (the REST run route: no
    conversation), in one of its concurrency slots. One autocommit session (lookups and one INSERT). Returns
    the run id and the slot still held (as :func:`open_chat`)."""
    with contextlib.ExitStack() as held:
        with autocommit_scope() as session:
            publication = publishing.get_publication(session=session, slug=slug)
            held.enter_context(limits.concurrency_slot(slug, publication.max_concurrency))
            run = runs.create_run(session=session, workflow_ref=None, inputs=inputs, version_id=publication.version_id)
        enqueue_new(run)
        return run.id, held.pop_all()


def reply_text(publication: Publication, outputs: dict[str, Any] | None) -> str:
    return threads.reply_of(outputs, publication.reply_output)


def usage(publication: Publication, outputs: dict[str, Any] | None) -> dict[str, int] | None:
    return threads.usage_of(outputs, publication.reply_output)


def sources(publication: Publication, outputs: dict[str, Any] | None) -> list[dict[str, Any]]:
    return threads.sources_of(outputs, publication.sources_output)


class ReplyTimedOut(StackyardError):
    status = 504


def cancel(run_id: str) -> None:
    """Stop a run nobody waits for any more (its client left, or its reply timed out); a finished run stays."""
    try:
        with session_scope() as session:
            runs.request_cancel(session, run_id=run_id)
    except StackyardError:
        pass  # already finished


def timed_out(run: Run, timeout: float) -> ReplyTimedOut:
    """A reply nobody will wait for any longer: its run is cancelled, and the error says what to do."""
    cancel(run.id)
    return ReplyTimedOut(f"Run {run.id} was still {run.state.value} after {timeout:g} s and was cancelled. Make the "
                         "workflow faster, or start it with POST /api/v1/apps/{slug}/run and poll GET /api/v1/runs/{id}.")


async def follow(run_id: str, *, timeout: float = REPLY_TIMEOUT_SECONDS,
                 left: Callable[[], Awaitable[bool]] | None = None) -> AsyncIterator[str | Run]:
    """Follow a run to its end: yields each token as the worker streams it (when Redis carries streams),
    then the finished run.

    After ``timeout`` seconds the run is cancelled and :class:`ReplyTimedOut` raised. ``left`` is asked
    between reads; when it says the client went away, ``asyncio.CancelledError`` is raised (the caller
    cancels the run)."""
    deadline = time.monotonic() + timeout

    async def check() -> None:
        if left is not None and await left():
            raise asyncio.CancelledError

    if streams.available():
        async for item in streams.read(run_id, block_ms=1000):
            await check()
            if streams.END in item or time.monotonic() > deadline:
                break
            if "t" in item:
                yield item["t"]
            elif (await run_in_threadpool(runs.read_run, run_id)).state in runs.TERMINAL_STATES:
                break  # ended before any token (e.g. failed while building)
    run = await run_in_threadpool(runs.read_run, run_id)
    while run.state not in runs.TERMINAL_STATES:
        if time.monotonic() > deadline:
            raise await run_in_threadpool(timed_out, run, timeout)
        await check()
        await asyncio.sleep(POLL_SECONDS)
        run = await run_in_threadpool(runs.read_run, run_id)
    yield run
