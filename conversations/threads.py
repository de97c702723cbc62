"""Conversations and their exchanges: opened by their owner only, continued turn by turn, settled from the
runs that answered, listed and exported for the PM, rated by the caller, turned into test cases.

Whose a conversation is: ``key:<api key id>`` for API callers, ``visitor:<id>`` for a chat page or widget
visitor (an opaque id in a cookie). Asking for another owner's or another app's conversation is the same 404
as an unknown id: nothing says it exists.
"""

from __future__ import annotations

import csv
import functools
import io
import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, bindparam, case, delete, insert, literal_column, null, true, update
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from conversations.memory import STORED_TURNS_READ, Earlier, newest_within
from conversations.models import Conversation, Exchange
from runs import lifecycle as runs
from runs.models import Run, RunState
from stackyard.errors import NotFound
from store.clock import as_utc, utcnow
from store.db import get_engine, session_scope
from workflows.models import new_id

SOURCE_CHARS = 1000
MAX_SOURCES = 20
PAGE_LIMIT = 200


def text(value: str) -> str:
    """``value`` as a text column holds it: a NUL character (which PostgreSQL refuses) becomes U+FFFD."""
    return value.replace("\x00", "\ufffd")


def key_owner(key_id: str) -> str:
    return f"key:{key_id}"


def visitor_owner(visitor: str) -> str:
    return f"visitor:{visitor[:100]}"


def _is_id(value: str) -> bool:
    """Whether ``value`` can be an id Stackyard made (32 hex digits); anything else is not looked up."""
    return len(value) == 32 and all(c in "0123456789abcdef" for c in value)


def conversation_not_found(conversation_id: str) -> NotFound:
    return NotFound(f"No conversation '{conversation_id[:64]}' for this caller; start one by leaving the "
                    "conversation id out (the reply carries the new id).", field="conversation_id")


def history(session: Session, conversation_id: str, *, slug: str, owner: str, turns: int,
            reply_output: str | None = None) -> list[dict[str, str]]:
    """The last ``turns`` exchanges of the caller's conversation ``conversation_id`` of app ``slug`` as chat
    messages, oldest first (a turn whose run failed or has not ended gives its question only); a 404 for an
    unknown id, another caller's or another app's. Reads only, in one statement (this is the chat hot path):
    replies not settled yet come from their runs' ``reply_output`` in the same query (the app's reply output
    now; a turn answered under another name costs one more)."""
    if not _is_id(conversation_id):
        raise conversation_not_found(conversation_id)
    rows = session.execute(_history_statement(reply_output), {"conversation_id": conversation_id, "owner": owner,
                                                              "slug": slug, "turns": max(turns, 1)}).all()
    if not rows:            # every conversation is made with its first turn: nothing here means not theirs
        raise conversation_not_found(conversation_id)
    return _as_messages(session, rows[:turns], read=reply_output)


@functools.lru_cache(maxsize=64)          # bounded: apps name their reply output
def _history_statement(reply_output: str | None) -> Any:
    """The history's statement for an app whose reply output is ``reply_output``, built once per name: building
    it cost 0.9 ms a turn, three times what PostgreSQL takes to run it (measured on a 20-turn conversation)."""
    last = (select(Exchange.position, Exchange.message, Exchange.reply, Exchange.ended, Exchange.run_id,
                   Exchange.reply_output)
            .where(col(Exchange.conversation_id) == bindparam("conversation_id"),
                   _theirs(bindparam("conversation_id"), owner=bindparam("owner"), slug=bindparam("slug")))
            .order_by(col(Exchange.position).desc()).limit(bindparam("turns")).subquery())
    # An unsettled reply is read from its run, found by id alone (the state is checked on the row), only for the
    # exchanges that need it. Joined, or with the state in the condition, PostgreSQL without statistics read every
    # run (by the state's index) once per exchange: the run table grows by one row a turn.
    run_reply = null()
    if reply_output:
        answer = (select(case((col(Run.state) == RunState.SUCCEEDED, Run.outputs[reply_output])))
                  .where(col(Run.id) == last.c.run_id).scalar_subquery())
        run_reply = case((and_(last.c.ended.is_(False), last.c.reply_output == reply_output), answer))
    return select(last, run_reply.label("run_reply")).order_by(last.c.position.desc())


def _theirs(conversation_id: Any, *, owner: Any = None, slug: Any = None) -> Any:
    """Whether conversation ``conversation_id`` exists and is ``owner``'s (and app ``slug``'s), as a condition that
    finds it by its primary key alone. Left a choice, PostgreSQL may take the owner's index instead (it did on a
    database whose statistics were not gathered yet) and read every conversation of the owner, once per exchange
    in a history: an API key serving many end users owns thousands (600 of them: 3.5 ms a history read instead of
    0.2)."""
    mine = aliased(Conversation)
    checks = [*([mine.owner == owner] if owner is not None else []),
              *([mine.app_slug == slug] if slug is not None else [])]
    return select(and_(true(), *checks)).where(mine.id == conversation_id).scalar_subquery()


def earlier(session: Session, conversation_id: str, *, kept: int) -> Earlier:
    """The conversation's turns before its last ``kept``: its stored summary, and the turns not summarized yet
    (the newest ``STORED_TURNS_READ`` of them) as messages (summary mode; after :func:`history` checked whose
    it is)."""
    summary, summarized, exchanges = session.execute(select(
        Conversation.summary, Conversation.summarized, Conversation.exchanges).where(
        col(Conversation.id) == conversation_id)).one()
    upto = exchanges - kept
    if upto <= summarized:
        return Earlier(summary, summarized, summarized, [])
    rows = session.execute(
        select(Exchange.position, Exchange.message, Exchange.reply, Exchange.ended, Exchange.run_id,
               Exchange.reply_output).where(col(Exchange.conversation_id) == conversation_id,
                                            col(Exchange.position) > summarized, col(Exchange.position) <= upto)
        .order_by(col(Exchange.position).desc()).limit(STORED_TURNS_READ)).all()
    return Earlier(summary, summarized, upto, _as_messages(session, rows))


def _as_messages(session: Session, rows: list[Any], read: str | None = None) -> list[dict[str, str]]:
    """Exchange rows (newest first) as chat messages, oldest first; a reply not settled yet is read from its
    run, only that value (a turn whose run failed or has not ended gives its question only). Rows already
    carry it (``run_reply``) when their reply output is ``read``."""
    pending: dict[str, list[str]] = {}          # reply output → runs not settled yet, not read with the rows
    replies = {}
    for row in rows:
        if row.ended:
            continue
        if read is not None and row.reply_output == read:
            if row.run_reply is not None:
                replies[row.run_id] = text(reply_of({read: row.run_reply}, read))
        else:
            pending.setdefault(row.reply_output, []).append(row.run_id)
    for name, run_ids in pending.items():      # by id alone, the state checked on the rows (see _history_statement)
        for run_id, state, value in session.execute(select(Run.id, Run.state, Run.outputs[name]).where(
                col(Run.id).in_(run_ids))).all():
            if state == RunState.SUCCEEDED:
                replies[run_id] = text(reply_of({name: value}, name))
    messages: list[dict[str, str]] = []
    for row in reversed(rows):
        messages.append({"role": "user", "content": row.message})
        if reply := (row.reply if row.ended else replies.get(row.run_id)):
            messages.append({"role": "assistant", "content": reply})
    return messages


def log_turn(session: Session, conversation_id: str | None, *, slug: str, owner: str, message: str, run_id: str,
             version_id: str, version: int, reply_output: str, sources_output: str | None,
             summary: tuple[str, int] | None = None) -> tuple[str, str]:
    """The turn just asked, as the next exchange of the caller's conversation (a new one, titled by the message,
    without an id); not committed: the caller commits it with the run, so neither is written without the other.
    Returns (the conversation id, the exchange id); a 404 as :func:`history` for a conversation not theirs."""
    now = utcnow()
    if conversation_id is None:
        conversation_id, position = new_id(), 1
        session.execute(insert(Conversation).values(id=conversation_id, app_slug=slug, owner=owner, exchanges=1,
                                                    title=text(message.strip()[:200]), created_at=now,
                                                    updated_at=now))
    else:
        position = session.execute(                # the next position, taken under the row's lock
            update(Conversation).where(col(Conversation.id) == conversation_id,
                                       _theirs(conversation_id, owner=owner, slug=slug))
            .values(exchanges=Conversation.exchanges + 1, updated_at=now).returning(Conversation.exchanges)
        ).scalar_one_or_none() if _is_id(conversation_id) else None
        if position is None:
            raise conversation_not_found(conversation_id)
        if summary is not None:                 # the turns that left the window, summarized (memory mode summary)
            session.execute(update(Conversation).where(col(Conversation.id) == conversation_id,
                                                       col(Conversation.summarized) < summary[1])
                            .values(summary=text(summary[0]), summarized=summary[1]))
    exchange_id = new_id()
    session.execute(insert(Exchange).values(id=exchange_id, conversation_id=conversation_id, position=position,
                                            message=text(message), run_id=run_id, version_id=version_id,
                                            version=version, reply_output=reply_output,
                                            sources_output=sources_output, ended=False, created_at=now))
    return conversation_id, exchange_id


def turns_in_one_statement() -> bool:
    """Whether :func:`start_turn` can write a turn here (PostgreSQL; SQLite takes :func:`log_turn` in a
    transaction)."""
    return get_engine().dialect.name == "postgresql"


def start_turn(session: Session, run: Run, conversation_id: str | None, *, slug: str, owner: str, message: str,
               version: int, reply_output: str, sources_output: str | None) -> tuple[str, str]:
    """Write the run answering a turn and the turn as the next exchange of the caller's conversation (a new one
    without an id), in one statement (PostgreSQL: data-modifying CTEs; in an autocommit ``session`` it commits
    as it runs): the conversation's next position, the run and the exchange stand or fall together, in one
    round trip instead of five. A conversation not theirs writes nothing: the 404 of :func:`history`."""
    now, exchange_id, new = utcnow(), new_id(), conversation_id is None
    if new:
        conversation_id = new_id()
    elif not _is_id(conversation_id):
        raise conversation_not_found(conversation_id)
    row = run.model_dump()
    exchange = {"id": exchange_id, "conversation_id": conversation_id, "message": text(message), "run_id": run.id,
                "version_id": run.version_id, "version": version, "reply_output": reply_output,
                "sources_output": sources_output, "ended": False, "created_at": now}
    values = {"turn_conversation_id": conversation_id, "turn_owner": owner, "turn_slug": slug, "turn_now": now,
              "turn_title": text(message.strip()[:200]), **{f"run_{name}": value for name, value in row.items()},
              **{f"exchange_{name}": value for name, value in exchange.items()}}
    statement = _turn_statement(new, tuple(row), tuple(exchange))
    if session.connection().execute(statement, values).scalar_one_or_none() is None:     # Core: one statement
        raise conversation_not_found(conversation_id)
    return conversation_id, exchange_id


@functools.lru_cache(maxsize=8)           # the shapes are the models' columns: two in practice
def _turn_statement(new: bool, run_columns: tuple[str, ...], exchange_columns: tuple[str, ...]) -> Any:
    """:func:`start_turn`'s statement for a new conversation or a continued one, built once and run with bound
    values (building it cost more than PostgreSQL took to run it, as for :func:`history`). No bound name is a
    column's: given at execution, such a name would be taken as that column's value."""
    if new:
        head = insert(Conversation).values(
            id=bindparam("turn_conversation_id"), app_slug=bindparam("turn_slug"), owner=bindparam("turn_owner"),
            exchanges=literal_column("1"), title=bindparam("turn_title"), created_at=bindparam("turn_now"),
            updated_at=bindparam("turn_now"))
    else:
        given = bindparam("turn_conversation_id")
        theirs = _theirs(given, owner=bindparam("turn_owner"), slug=bindparam("turn_slug"))
        head = update(Conversation).where(col(Conversation.id) == given, theirs).values(
            exchanges=Conversation.exchanges + literal_column("1"), updated_at=bindparam("turn_now"))
    turn = head.returning(col(Conversation.exchanges).label("position")).cte("turn")
    runs_, exchanges = Run.__table__.c, Exchange.__table__.c
    new_run = insert(Run).from_select(list(run_columns), select(
        *[bindparam(f"run_{name}", type_=runs_[name].type) for name in run_columns]).select_from(turn))
    return insert(Exchange).from_select([*exchange_columns, "position"], select(
        *[bindparam(f"exchange_{name}", type_=exchanges[name].type) for name in exchange_columns],
        turn.c.position)).returning(col(Exchange.position)).add_cte(new_run.cte("new_run"))


# ── what a run answered ─────────────────────────────────────────────────────────────────────────────


def reply_of(outputs: dict[str, Any] | None, reply_output: str) -> str:
    """The reply text in a run's outputs: a string, a reply (``text``), or the first of a list of them."""
    value = (outputs or {}).get(reply_output)
    if isinstance(value, list):
        value = value[0] if value else ""
    if isinstance(value, dict):
        value = value.get("text") or value.get("data") or value.get("content") or ""
    return "" if value is None else str(value)


def sources_of(outputs: dict[str, Any] | None, sources_output: str | None) -> list[dict[str, Any]]:
    if not sources_output:
        return []
    value = (outputs or {}).get(sources_output) or []
    return [doc for doc in value if isinstance(doc, dict)] if isinstance(value, list) else []


def usage_of(outputs: dict[str, Any] | None, reply_output: str) -> dict[str, int] | None:
    value = (outputs or {}).get(reply_output)
    first = value[0] if isinstance(value, list) and value else value
    meta = first.get("meta", {}) if isinstance(first, dict) else {}
    found = meta.get("usage") if isinstance(meta, dict) else None
    if not isinstance(found, dict):
        return None
    keys = ("prompt_tokens", "completion_tokens", "total_tokens")
    return {k: int(found[k]) for k in keys if isinstance(found.get(k), int | float)} or None


def settle(session: Session, exchanges: list[Exchange]) -> None:
    """Exchanges whose run has ended since, filled from it (reply, sources, tokens, latency, error) and kept so."""
    open_ = {e.run_id: e for e in exchanges if not e.ended}
    if not open_:
        return
    for run in session.exec(select(Run).where(col(Run.id).in_(list(open_)))).all():
        if run.state not in runs.TERMINAL_STATES:
            continue
        exchange = open_[run.id]
        succeeded = run.state == RunState.SUCCEEDED
        exchange.reply = text(reply_of(run.outputs, exchange.reply_output)) if succeeded else None
        exchange.sources = [_source(doc) for doc in sources_of(run.outputs, exchange.sources_output)[:MAX_SOURCES]]
        exchange.tokens = usage_of(run.outputs, exchange.reply_output) if succeeded else None
        if run.finished_at is not None:
            exchange.latency_ms = round((run.finished_at - run.created_at).total_seconds() * 1000, 1)
        exchange.error = None if succeeded else text(f"the run {run.state.value}: {run.error or ''}"[:2000])
        exchange.ended = True
        session.add(exchange)
    session.flush()


def _source(doc: dict[str, Any]) -> dict[str, Any]:
    meta = doc.get("meta") if isinstance(doc.get("meta"), dict) else {}
    return {"id": doc.get("id"), "score": doc.get("score"), "content": text((doc.get("content") or "")[:SOURCE_CHARS]),
            "document_id": meta.get("kb_document_id"), "file": meta.get("file_path") or meta.get("file_name")}


# ── logs ────────────────────────────────────────────────────────────────────────────────────────────


def exchanges_query(*, app: str | None = None, version: int | None = None, since: datetime | None = None,
                    until: datetime | None = None, rating: int | None = None, errors: bool | None = None) -> Any:
    """Exchanges (with their conversation) matching the log's filters, newest first."""
    query = (select(Exchange, Conversation).join(Conversation, col(Conversation.id) == col(Exchange.conversation_id))
             .order_by(col(Exchange.created_at).desc(), col(Exchange.id)))
    if app:
        query = query.where(Conversation.app_slug == app)
    if version is not None:
        query = query.where(Exchange.version == version)
    if since is not None:
        query = query.where(col(Exchange.created_at) >= since)
    if until is not None:
        query = query.where(col(Exchange.created_at) < until)
    if rating is not None:
        query = query.where(Exchange.rating == rating)
    if errors is not None:
        query = query.where(col(Exchange.error).is_not(None) if errors else col(Exchange.error).is_(None))
    return query


def list_exchanges(session: Session, *, limit: int = 50, offset: int = 0, **filters: Any) -> list[tuple[Exchange,
                                                                                                        Conversation]]:
    rows = list(session.exec(exchanges_query(**filters).offset(offset).limit(min(limit, PAGE_LIMIT))).all())
    settle(session, [exchange for exchange, _ in rows])
    return rows


EXPORT_COLUMNS = ("created_at", "app", "conversation_id", "id", "position", "version", "message", "reply", "rating",
                  "comment", "latency_ms", "error", "run_id")
"""The columns of a CSV export of the logs (the API's and the page's)."""


def export_cell(value: Any) -> str:
    """A CSV cell of the logs; one a spreadsheet would run as a formula is quoted (an end user wrote it)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


RATING_NAMES = {1: "up", -1: "down"}


def export_record(exchange: Exchange, conversation: Conversation) -> dict[str, Any]:
    """An exchange as every export writes it: a JSONL line (the API's and the page's), the CSV's source."""
    return {"created_at": as_utc(exchange.created_at).isoformat(), "app": conversation.app_slug,
            "conversation_id": exchange.conversation_id, "id": exchange.id, "position": exchange.position,
            "version": exchange.version, "message": exchange.message, "reply": exchange.reply,
            "rating": RATING_NAMES.get(exchange.rating) if exchange.rating is not None else None,
            "comment": exchange.comment, "latency_ms": exchange.latency_ms, "error": exchange.error,
            "run_id": exchange.run_id, "sources": exchange.sources or [], "tokens": exchange.tokens}


def export_lines(kind: Literal["csv", "jsonl"], **filters: Any) -> Iterator[str]:
    """The export of every matching exchange, newest first, line by line (a header first for CSV): CSV cells
    quoted against formulas, JSONL records as :func:`export_record` makes them."""
    if kind == "csv":
        yield _csv_line(EXPORT_COLUMNS)
    for exchange, conversation in iter_exchanges(**filters):
        row = export_record(exchange, conversation)
        yield (_csv_line(row[c] for c in EXPORT_COLUMNS) if kind == "csv"
               else json.dumps(row, ensure_ascii=False) + "\n")


def _csv_line(values: Iterable[Any]) -> str:
    out = io.StringIO()
    csv.writer(out).writerow([export_cell(v) for v in values])
    return out.getvalue()


def iter_exchanges(**filters: Any) -> Iterator[tuple[Exchange, Conversation]]:
    """Every matching exchange, a page at a time, each page read (and settled) in its own short transaction: an
    export of a busy app is neither held in memory nor holding the database while its reader is slow."""
    offset = 0
    while True:
        with session_scope() as session:
            rows = list_exchanges(session, limit=PAGE_LIMIT, offset=offset, **filters)
            session.expunge_all()
        yield from rows
        if len(rows) < PAGE_LIMIT:
            return
        offset += PAGE_LIMIT


def thread(session: Session, conversation_id: str, *, owner: str | None = None,
           last: int | None = None) -> tuple[Conversation, list[Exchange]]:
    """A conversation and its exchanges in order, or its ``last`` ones (``owner``: only if it is theirs)."""
    conversation = session.get(Conversation, conversation_id) if _is_id(conversation_id) else None
    if conversation is None or (owner is not None and conversation.owner != owner):
        raise conversation_not_found(conversation_id)
    query = select(Exchange).where(Exchange.conversation_id == conversation.id)
    if last is None:
        exchanges = list(session.exec(query.order_by(col(Exchange.position))).all())
    else:
        exchanges = list(reversed(session.exec(query.order_by(col(Exchange.position).desc()).limit(last)).all()))
    settle(session, exchanges)
    return conversation, exchanges


def latest(session: Session, *, slug: str, owner: str) -> str | None:
    """The id of the owner's conversation with app ``slug`` that went on last, if any."""
    return session.exec(select(Conversation.id).where(col(Conversation.app_slug) == slug,
                                                      col(Conversation.owner) == owner)
                        .order_by(col(Conversation.updated_at).desc()).limit(1)).first()


def delete_conversation(session: Session, conversation_id: str, *, owner: str | None = None) -> None:
    """The conversation, every message of it, and the runs that answered them (their inputs hold the messages)."""
    conversation, _ = thread(session, conversation_id, owner=owner)
    _delete(session, [conversation.id])


def purge(session: Session, *, before: datetime) -> int:
    """Conversations not continued since ``before``, with their messages and runs (the retention setting); one
    continued meanwhile is kept (the delete checks again)."""
    return len(_delete(session, list(session.exec(select(Conversation.id).where(
        col(Conversation.updated_at) < before).limit(1000)).all()), before=before))


def _delete(session: Session, conversation_ids: list[str], *, before: datetime | None = None) -> list[str]:
    if not conversation_ids:
        return []
    runs_of = session.execute(select(Exchange.conversation_id, Exchange.run_id).where(
        col(Exchange.conversation_id).in_(conversation_ids))).all()
    statement = delete(Conversation).where(col(Conversation.id).in_(conversation_ids))
    if before is not None:
        statement = statement.where(col(Conversation.updated_at) < before)
    gone = list(session.execute(statement.returning(Conversation.id)).scalars().all())
    session.execute(delete(Exchange).where(col(Exchange.conversation_id).in_(gone)))
    run_ids = sorted({run_id for conversation_id, run_id in runs_of if conversation_id in set(gone)})
    for first in range(0, len(run_ids), 1000):
        session.execute(delete(Run).where(col(Run.id).in_(run_ids[first:first + 1000])))
    session.expire_all()
    return gone


# ── feedback ────────────────────────────────────────────────────────────────────────────────────────


def exchange_of(session: Session, exchange_id: str, *, owner: str | None = None) -> Exchange:
    """Exchange (message) ``exchange_id``; with ``owner``, only one of their conversations (else 404)."""
    exchange = session.get(Exchange, exchange_id) if _is_id(exchange_id) else None
    if exchange is not None and owner is not None:
        conversation = session.get(Conversation, exchange.conversation_id)
        exchange = exchange if conversation is not None and conversation.owner == owner else None
    if exchange is None:
        raise message_not_found(exchange_id)
    return exchange


def message_not_found(exchange_id: str) -> NotFound:
    return NotFound(f"No message '{exchange_id[:64]}' for this caller; message ids come with each reply "
                    "(field 'message_id').", field="message_id")


def rate(session: Session, exchange_id: str, *, rating: int, comment: str | None, owner: str | None,
         slug: str | None = None) -> Exchange:
    """Thumbs up (1) or down (-1) on a reply, with an optional comment; a second rating replaces the first. Only a
    reply in one of ``owner``'s conversations (with app ``slug``, when given): one UPDATE checks and writes, so a
    conversation deleted meanwhile is a 404, never a half-done rating."""
    if not _is_id(exchange_id):
        raise message_not_found(exchange_id)
    rated = session.scalars(update(Exchange).where(col(Exchange.id) == exchange_id,
                                                   _theirs(Exchange.conversation_id, owner=owner, slug=slug))
                            .values(rating=rating, comment=comment or None).returning(Exchange)).first()
    if rated is None:
        raise message_not_found(exchange_id)
    return rated


def to_test_case(session: Session, exchange_id: str, *, test_set: str, expected_answer: str | None,
                 expected_sources: list[Any]) -> tuple[Any, str]:
    """The exchange's question as a case of test set ``test_set`` (made if needed), with the answer the PM
    expects and the sources that should have been found; returns (the new revision, the case's key). The key
    names the message (``chat-…``), so a message becomes a case once; its tags say it came from chat and which
    version answered."""
    from evaluations import testsets
    from evaluations.importing import MAX_FIELD_CHARS, CaseIn

    exchange = exchange_of(session, exchange_id)
    key = f"chat-{exchange.id[:16]}"
    given = session.execute(select(Run.inputs).where(col(Run.id) == exchange.run_id)).scalar_one_or_none()
    case = CaseIn(key=key, inputs=replay_inputs(given, exchange.message, MAX_FIELD_CHARS),
                  expected_answer=expected_answer,
                  expected_sources=expected_sources, tags=["from-chat", f"v{exchange.version}"])
    made = testsets.add(session, test_set, [case], note=f"from conversation {exchange.conversation_id}",
                        description="cases taken from chat logs")
    return made, key


def replay_inputs(given: Any, message: str, chars: int) -> dict[str, Any]:
    """What the workflow was given for a turn (its run's inputs: the message, and the history the memory policy
    kept), so that a case made from a follow-up asks it in the same context; ``{"input": message}`` when the run
    is gone. A history that would take the case over ``chars`` characters loses its oldest messages first."""
    if not isinstance(given, dict) or not given:
        return {"input": message}
    inputs = dict(given)
    for name, value in inputs.items():
        if isinstance(value, list) and all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in value):
            others = len(json.dumps({k: v for k, v in inputs.items() if k != name}))
            inputs[name] = newest_within(value, max(chars - others, 0) // 2)  # room for JSON's quoting
    return inputs
