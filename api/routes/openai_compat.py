"""OpenAI-compatible API over published apps: ``GET /v1/models`` and ``POST /v1/chat/completions``.

``model`` is the app's slug. Conversations work both ways: a client that sends the whole ``messages`` list
(OpenAI's convention) has it used as the history, and one that sends only the new message with a conversation id
(header ``X-Conversation-Id`` or ``metadata.conversation_id``) has the app's stored turns used instead; either
way the turn is logged (unless ``STACKYARD_CONVERSATIONS=false``), and the reply carries ``conversation_id`` and
``message_id`` (also as the headers ``X-Conversation-Id`` and ``X-Message-Id``; in a stream, on its last chunk)
for the next turn and for feedback. With ``stream: true`` the reply arrives as Server-Sent Events in OpenAI's
chunk format, token by token as the worker's generator produces them, ending with ``data: [DONE]``.
A client that disconnects cancels its run. Errors use OpenAI's error shape (see ``api.errors``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.openapi import API_KEY, BODY, KEY_WHY, TEXT, errors, request_body, schema_of
from api.routes.apps import VISITOR_ID, admit, authenticated, caller, chat_owner
from api.routes.runs import ended
from api.schemas.openai import ChatCompletionRequest
from apps import chat, publishing
from runs.models import RunState
from stackyard.errors import StackyardError
from store.db import session_scope

router = APIRouter(prefix="/v1", tags=["openai"], route_class=LimitedRoute, dependencies=[API_KEY],
                   responses=errors(400, 401, 422, 429, openai=True, why=KEY_WHY))
COMPLETION_TIMEOUT_SECONDS = 300.0
CONVERSATION_HEADER, MESSAGE_HEADER = "X-Conversation-Id", "X-Message-Id"


class RunFailed(StackyardError):
    status = 502


@router.get("/models")
def models(authorization: str | None = Header(default=None, include_in_schema=False)) -> dict[str, Any]:
    key = caller(authorization, None)
    with session_scope() as session:
        apps = publishing.list_publications(session=session)
    return {"object": "list", "data": [
        {"id": app.slug, "object": "model", "created": int(app.created_at.timestamp()), "owned_by": "stackyard"}
        for app in apps if key.app_slug in (None, app.slug)]}


def _chunk(completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
    payload = {"id": completion_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra}
    return f"data: {json.dumps(payload)}\n\n"


async def _events(request: Request, turn: chat.Turn, model: str) -> AsyncIterator[str]:
    publication, run_id = turn.publication, turn.run_id
    completion_id = f"chatcmpl-{run_id}"
    yield _chunk(completion_id, model, {"role": "assistant", "content": ""})
    streamed, result = False, None
    try:
        try:
            async for item in chat.follow(run_id, timeout=COMPLETION_TIMEOUT_SECONDS, left=request.is_disconnected):
                if isinstance(item, str):
                    streamed = True
                    yield _chunk(completion_id, model, {"content": item})
                else:
                    result = item
        except chat.ReplyTimedOut as exc:
            yield _error_event(str(exc), "timeout")
        else:
            if result.state != RunState.SUCCEEDED:
                yield _error_event(f"The workflow run {run_id} {result.state.value}: {result.error}", "run_failed")
            else:
                if not streamed:  # a generator that does not stream: send the reply whole
                    yield _chunk(completion_id, model, {"content": chat.reply_text(publication, result.outputs)})
                extra: dict[str, Any] = {"conversation_id": turn.conversation_id, "message_id": turn.message_id}
                if (usage := chat.usage(publication, result.outputs)) is not None:
                    extra["usage"] = usage
                sources = chat.sources(publication, result.outputs)
                if sources:
                    extra["sources"] = sources
                yield _chunk(completion_id, model, {}, "stop", **extra)
        yield "data: [DONE]\n\n"
    except (asyncio.CancelledError, GeneratorExit):
        # The client left: stop the work. Synchronously, since nothing can be awaited in a cancelled scope.
        chat.cancel(run_id)
        raise


def _error_event(message: str, code: str) -> str:
    error = {"message": message, "type": "server_error", "param": None, "code": code}
    return f"data: {json.dumps({'error': error})}\n\n"


_REPLY = {"description": "The reply; with `stream: true`, Server-Sent Events in OpenAI's chunk format",
          "content": {"text/event-stream": {"schema": TEXT}}}
_NOT_A_CHAT = {**KEY_WHY, 400: "The body is not a chat request in OpenAI's format, or the Host header names a host "
                               "this server does not answer."}


@router.post("/chat/completions", openapi_extra=request_body({"application/json": schema_of(ChatCompletionRequest)}),
             responses={200: _REPLY, **errors(*BODY, 404, 502, 503, 504, openai=True, why=_NOT_A_CHAT)})
async def chat_completions(request: Request, authorization: str | None = Header(default=None, include_in_schema=False),
                           x_conversation_id: str | None = Header(default=None, max_length=64, description=(
                               "Continue this conversation: send only the new message (or metadata."
                               "conversation_id in the body)")),
                           x_stackyard_visitor: str | None = Header(default=None, pattern=VISITOR_ID, description=(
                               "The chat widget's visitor id: conversations are that visitor's")),
                           x_stackyard_widget: str | None = Header(default=None, max_length=64,
                                                                   include_in_schema=False)):
    key = await run_in_threadpool(authenticated, authorization)
    body = ChatCompletionRequest.model_validate(await request.json())
    messages = [m.model_dump() for m in body.messages]
    conversation_id = body.conversation(x_conversation_id)

    def begin() -> tuple[chat.Turn, Any]:
        admit(key, body.model)
        owner = chat_owner(key, body.model, visitor=x_stackyard_visitor, widget=x_stackyard_widget)
        return chat.open_chat(body.model, owner=owner, messages=messages, conversation_id=conversation_id,
                              stream=body.stream)

    turn, slot = await run_in_threadpool(begin)
    publication, run_id = turn.publication, turn.run_id
    ids = {CONVERSATION_HEADER: turn.conversation_id, MESSAGE_HEADER: turn.message_id} if turn.message_id else {}
    if body.stream:
        async def guarded() -> AsyncIterator[str]:
            with slot:
                async for event in _events(request, turn, body.model):
                    yield event

        return StreamingResponse(guarded(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no", **ids})
    with slot:
        state, outputs, error = await ended(run_id, COMPLETION_TIMEOUT_SECONDS)
    if state != RunState.SUCCEEDED:
        raise RunFailed(f"The workflow run {run_id} {state.value}: {error}")
    response: dict[str, Any] = {
        "id": f"chatcmpl-{run_id}", "object": "chat.completion", "created": int(time.time()), "model": body.model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": chat.reply_text(publication, outputs)},
                     "finish_reason": "stop"}],
        "usage": chat.usage(publication, outputs) or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
    }
    if sources := chat.sources(publication, outputs):
        response["sources"] = sources
    response.update(conversation_id=turn.conversation_id, message_id=turn.message_id)
    return JSONResponse(response, headers=ids)
