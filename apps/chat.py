"""Serving published apps: turn chat messages into a run of the pinned version and its outputs into a reply.

Shared by the REST app endpoint, the OpenAI-compatible API and the chat page; :func:`follow` is the one
reader of a reply as it streams, for the OpenAI stream and the page alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from apps import limits, publishing
from apps.models import Publication
from runs import lifecycle as runs
from runs.models import Run
from stackyard.errors import StackyardError
from store.db import autocommit_scope, session_scope
from worker import streams
from worker.enqueue import enqueue_new
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
        return "".join(part.get("text", "") for part in content if isinstance(part, dict) and part.get("type") == "text")
    return ""


def chat_inputs(publication: Publication, messages: list[dict[str, Any]]) -> dict[str, Any]:
    if not messages:
        raise BadChatRequest("messages must hold at least one message with role 'user'.", field="messages")
    last = messages[-1]
    if last.get("role") != "user":
        raise BadChatRequest(f"The last message must have role 'user', not '{last.get('role')}'.", field="messages")
    inputs: dict[str, Any] = {publication.message_input: message_text(last.get("content"))}
    if publication.history_input:
        inputs[publication.history_input] = [{"role": m.get("role"), "content": message_text(m.get("content"))}
                                             for m in messages[:-1]]
    return inputs


def open_run(slug: str, inputs_for: Callable[[Publication], dict[str, Any]], *,
             stream: bool) -> tuple[Publication, str, contextlib.ExitStack]:
    """Load app ``slug``, take one of its concurrency slots and queue a run of its pinned version.

    One autocommit session (lookups and one INSERT) and one thread hop for what a chat request needs
    before its run can start (this is the serving hot path). Returns the slot still held: the caller
    releases it (``with slot:``) when the reply is done; on any error here it is released before raising.
    """
    with contextlib.ExitStack() as held:
        with autocommit_scope() as session:
            publication = publishing.get_publication(session=session, slug=slug)
            inputs = inputs_for(publication)
            held.enter_context(limits.concurrency_slot(slug, publication.max_concurrency))
            stream_node = None
            if stream:
                spec = runs.version_info(session, publication.version_id).spec
                stream_node = split_socket(spec.outputs[publication.reply_output])[0]
            run = runs.create_run(session=session, workflow_ref=None, inputs=inputs,
                                  version_id=publication.version_id, stream_node=stream_node)
        enqueue_new(run)
        return publication, run.id, held.pop_all()


def reply_text(publication: Publication, outputs: dict[str, Any] | None) -> str:
    value = (outputs or {}).get(publication.reply_output)
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("text") or value.get("data") or value.get("content") or ""
    return "" if value is None else str(value)


def usage(publication: Publication, outputs: dict[str, Any] | None) -> dict[str, int] | None:
    value = (outputs or {}).get(publication.reply_output)
    first = value[0] if isinstance(value, list) and value else value
    meta = first.get("meta", {}) if isinstance(first, dict) else {}
    found = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(found, dict):
        return None
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: int(found[k]) for k in keys if isinstance(found.get(k), int | float)} or None


def sources(publication: Publication, outputs: dict[str, Any] | None) -> list[dict[str, Any]]:
    if not publication.sources_output:
        return []
    value = (outputs or {}).get(publication.sources_output) or []
    return [doc for doc in value if isinstance(doc, dict)] if isinstance(value, list) else []


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
