"""Conversations of published apps: a chat turn over REST and feedback on a reply (API keys, scoped to the app:
a key reads and rates only its own conversations), and the logs (admin): list with filters, one thread, export
as CSV or JSONL, delete, and a reply turned into a test case."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import AfterValidator, AwareDatetime, BeforeValidator
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from api.bodies import LimitedRoute
from api.deps import SessionDep
from api.openapi import API_KEY, BODY, KEY_WHY, WRITE, errors, request_body, schema_of
from api.routes.apps import VISITOR_ID, admit, authenticated, chat_owner
from api.routes.runs import ended
from api.schemas.conversations import (
    ChatTurn,
    ChatTurnRequest,
    ConversationPublic,
    ExchangePublic,
    Feedback,
    TestCaseFromReply,
)
from api.schemas.evaluations import RevisionPublic
from apps import chat
from conversations import threads
from conversations.models import Conversation, Exchange
from runs.models import RunState
from stackyard.errors import StackyardError
from store.db import session_scope
from workflows.bounds import Text

router = APIRouter(prefix="/api/v1", tags=["conversations"], route_class=LimitedRoute,
                   responses=errors(400, 401, 429))
REPLY_SECONDS = 300.0
RATINGS = {"up": 1, "down": -1}


def _sane(value: datetime) -> datetime:
    try:
        year = value.astimezone(UTC).year
    except OverflowError:           # 0001-01-01 east of UTC is before year 1 there
        year = 0
    if not 1970 <= year <= 2999:
        raise ValueError("give a date between 1970 and 2999, with its time zone (e.g. 2026-12-01T00:00:00Z)")
    return value


def _iso(value: object) -> object:
    """Only ISO 8601 text: pydantic would also read '0.5' as seconds since 1970."""
    if isinstance(value, str):
        try:
            datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("give an ISO 8601 time with its time zone, e.g. 2026-12-01T00:00:00Z") from None
    return value


Moment = Annotated[AwareDatetime, BeforeValidator(_iso), AfterValidator(_sane)]
"""A time filter: ISO 8601 with its time zone (naive times are ambiguous, and refused)."""


class ReplyFailed(StackyardError):
    status = 502


@router.post("/apps/{slug}/chat", response_model=ChatTurn, dependencies=[API_KEY],
             openapi_extra=request_body({"application/json": schema_of(ChatTurnRequest)}),
             responses=errors(*BODY, 401, 403, 404, 502, 503, 504, why=KEY_WHY))
async def chat_turn(slug: Text, request: Request,
                    authorization: str | None = Header(default=None, include_in_schema=False)) -> ChatTurn:
    """One turn of a conversation with app ``slug``: leave ``conversation_id`` out to start one; the reply names
    it (send it with the next message: the app remembers the turns before, by its memory policy)."""
    key = await run_in_threadpool(authenticated, authorization)
    body = ChatTurnRequest.model_validate(await request.json())

    def begin() -> tuple[chat.Turn, Any]:
        admit(key, slug)
        return chat.open_chat(slug, owner=chat_owner(key, slug, visitor=None, widget=None),
                              conversation_id=body.conversation_id,
                              messages=[{"role": "user", "content": body.message}], stream=False)

    turn, slot = await run_in_threadpool(begin)
    with slot:
        state, outputs, error = await ended(turn.run_id, REPLY_SECONDS)
    if state != RunState.SUCCEEDED:
        raise ReplyFailed(f"The workflow run {turn.run_id} {state.value}: {error}")
    return ChatTurn(conversation_id=turn.conversation_id, message_id=turn.message_id, run_id=turn.run_id,
                    reply=chat.reply_text(turn.publication, outputs), sources=chat.sources(turn.publication, outputs))


@router.post("/apps/{slug}/messages/{message_id}/feedback", response_model=ExchangePublic, dependencies=[API_KEY],
             responses=errors(*BODY, 401, 403, 404, why=KEY_WHY))
def feedback(slug: Text, message_id: Text, body: Feedback,
             authorization: str | None = Header(default=None, include_in_schema=False),
             x_stackyard_visitor: str | None = Header(default=None, pattern=VISITOR_ID),
             x_stackyard_widget: str | None = Header(default=None, max_length=64, include_in_schema=False)
             ) -> ExchangePublic:
    """Thumbs up or down on a reply of one of this key's conversations (or its widget visitor's), with an
    optional comment (a second rating replaces the first)."""
    owner = _owner(authorization, slug, x_stackyard_visitor, x_stackyard_widget)
    with session_scope() as session:
        exchange = threads.rate(session, message_id, rating=RATINGS[body.rating], comment=body.comment, owner=owner,
                                slug=slug)
        return exchange_public(session, exchange)


@router.get("/apps/{slug}/conversations/{conversation_id}", response_model=ConversationPublic,
            dependencies=[API_KEY], responses=errors(401, 403, 404, 422, why=KEY_WHY))
def own_conversation(slug: Text, conversation_id: Text,
                     authorization: str | None = Header(default=None, include_in_schema=False),
                     x_stackyard_visitor: str | None = Header(default=None, pattern=VISITOR_ID),
                     x_stackyard_widget: str | None = Header(default=None, max_length=64, include_in_schema=False)
                     ) -> ConversationPublic:
    """One of this key's (or its widget visitor's) conversations with app ``slug``, in order: what a chat
    client shows again after a reload."""
    owner = _owner(authorization, slug, x_stackyard_visitor, x_stackyard_widget)
    with session_scope() as session:
        conversation, exchanges = threads.thread(session, conversation_id, owner=owner)
        if conversation.app_slug != slug:
            raise threads.conversation_not_found(conversation_id)
        return conversation_public(session, conversation, exchanges)


def _owner(authorization: str | None, slug: str, visitor: str | None, widget: str | None) -> str:
    key = authenticated(authorization)
    admit(key, slug)
    return chat_owner(key, slug, visitor=visitor, widget=widget)


# ── logs (admin) ────────────────────────────────────────────────────────────────────────────────────


def exchange_public(session: Session | None, exchange: Exchange, conversation: Conversation | None = None
                    ) -> ExchangePublic:
    conversation = conversation or session.get(Conversation, exchange.conversation_id)
    rating = threads.RATING_NAMES.get(exchange.rating) if exchange.rating is not None else None
    return ExchangePublic(**exchange.model_dump(exclude={"rating"}), rating=rating,
                          app=conversation.app_slug if conversation else "?")


def _filters(app: str | None, version: int | None, since: datetime | None, until: datetime | None,
             rating: Literal["up", "down"] | None, errors_: bool | None) -> dict[str, Any]:
    return {"app": app, "version": version, "since": since, "until": until,
            "rating": RATINGS[rating] if rating else None, "errors": errors_}


@router.get("/conversations", response_model=list[ExchangePublic], responses=errors(422))
def list_exchanges(session: SessionDep, app: Text | None = Query(default=None, max_length=64),
                   version: int | None = Query(default=None, ge=1, le=2**31 - 1),
                   since: Moment | None = None, until: Moment | None = None,
                   rating: Literal["up", "down"] | None = None,
                   errors_: bool | None = Query(default=None, alias="errors", description="Only failed (true) or "
                                                                                          "answered (false) ones"),
                   limit: int = Query(default=50, ge=1, le=threads.PAGE_LIMIT),
                   offset: int = Query(default=0, ge=0, le=1_000_000)) -> list[ExchangePublic]:
    """Every app's exchanges, newest first, by app, version, date, rating and error."""
    rows = threads.list_exchanges(session, limit=limit, offset=offset,
                                  **_filters(app, version, since, until, rating, errors_))
    return [exchange_public(session, exchange, conversation) for exchange, conversation in rows]



@router.get("/conversations/export", responses={200: {"content": {"text/csv": {}, "application/x-ndjson": {}}},
                                               **errors(422)})
def export(format: Literal["csv", "jsonl"] = "jsonl", app: Text | None = Query(default=None, max_length=64),
           version: int | None = Query(default=None, ge=1, le=2**31 - 1), since: Moment | None = None,
           until: Moment | None = None, rating: Literal["up", "down"] | None = None,
           errors_: bool | None = Query(default=None, alias="errors")) -> StreamingResponse:
    """The exchanges the filters select, streamed a page at a time (CSV or JSON lines)."""
    lines = threads.export_lines(format, **_filters(app, version, since, until, rating, errors_))
    media = "text/csv" if format == "csv" else "application/x-ndjson"
    return StreamingResponse(lines, media_type=media, headers={
        "Content-Disposition": f'attachment; filename="conversations.{format}"'})


@router.get("/conversations/{conversation_id}", response_model=ConversationPublic, responses=errors(404, 422))
def get_conversation(conversation_id: Text, session: SessionDep) -> ConversationPublic:
    """One thread in order, each reply with its sources, latency, tokens, error and run (its trace)."""
    conversation, exchanges = threads.thread(session, conversation_id)
    return conversation_public(session, conversation, exchanges)


def conversation_public(session: Session, conversation: Conversation, exchanges: list[Exchange]) -> ConversationPublic:
    return ConversationPublic(id=conversation.id, app=conversation.app_slug, title=conversation.title,
                              created_at=conversation.created_at, updated_at=conversation.updated_at,
                              exchanges=[exchange_public(session, e, conversation) for e in exchanges])


@router.delete("/conversations/{conversation_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=errors(*WRITE, 404, 422))
def delete_conversation(conversation_id: Text, session: SessionDep) -> Response:
    """The conversation and all its messages."""
    threads.delete_conversation(session, conversation_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/conversations/messages/{message_id}/test-case", response_model=RevisionPublic,
             status_code=status.HTTP_201_CREATED, responses=errors(*BODY, 404, 409))
def to_test_case(message_id: Text, body: TestCaseFromReply, session: SessionDep) -> RevisionPublic:
    """The message as a case of a test set (its next revision; the set is made if there is none), with the
    answer and sources it should have had: the evaluation then checks every new version against it."""
    made, _ = threads.to_test_case(session, message_id, test_set=body.test_set, expected_answer=body.expected_answer,
                                   expected_sources=body.expected_sources)
    return RevisionPublic(**made.model_dump())
