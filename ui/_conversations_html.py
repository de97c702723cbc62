"""How the conversations page shows the chat logs: the exchanges table and one thread as HTML strings, and each
exchange as its CSV and JSONL exports write it.

Plain functions of rows already read; the page (``ui.conversations_page``) reads them. Everything a caller or a
run wrote (messages, replies, comments, errors, sources, app slugs, titles) goes through ``html.escape``: a chat
log is hostile input. Rows and a turn's button carry ``data-pick``; the page's ``JS_ON_LOAD`` turns a click on
one into the component's ``click`` event with its ids.
"""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any

from store.clock import as_utc

CELL = 120            # characters of a message or reply in the table
SOURCE_SNIPPET = 300  # characters of a source's text in a thread
TURN_TEXT = 20_000    # characters of a message or reply in a thread
RATING_MARKS = {1: "👍", -1: "👎"}
TD = 'style="border-top:1px solid #e5e7eb;padding:4px 6px;vertical-align:top"'
MUTED = "color:#6b7280"

JS_ON_LOAD = """
const pick = (event) => {
  const picked = event.target.closest('[data-pick]');
  if (!picked || !element.contains(picked) || event.target.closest('a')) return;
  trigger('click', {pick: picked.dataset.pick, conversation: picked.dataset.conversation || '',
                    message: picked.dataset.message || ''});
};
element.addEventListener('click', pick);
element.addEventListener('keydown', (event) => { if (event.key === 'Enter') pick(event); });
"""
CSS = """
.cv-row { cursor: pointer; }
.cv-row:hover, .cv-row:focus { background: rgba(37, 99, 235, 0.08); outline: none; }
.cv-turn { border: 1px solid #e5e7eb; border-radius: 6px; padding: 8px 10px; margin: 8px 0; list-style: none; }
.cv-text { white-space: pre-wrap; overflow-wrap: anywhere; margin: 2px 0 6px; }
.cv-pick { border: 1px solid #d1d5db; border-radius: 4px; padding: 0 8px; background: transparent; cursor: pointer;
           font-size: 0.85em; font-weight: normal; line-height: 1.6; }
"""


def esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def clip(value: str | None, limit: int) -> str:
    text = value or ""
    if len(text) <= limit:
        return text
    return text[:limit] + (f"… ({len(text) - limit:,} more characters)" if limit >= TURN_TEXT else "…")


def when(moment: datetime | None) -> str:
    return "" if moment is None else as_utc(moment).strftime("%Y-%m-%d %H:%M:%S")


def latency(ms: float | None) -> str:
    return "—" if ms is None else f"{ms:,.0f} ms"


def tokens_text(tokens: dict[str, int] | None) -> str:
    if not tokens:
        return "tokens —"
    parts = [f"{tokens[k]} {name}" for k, name in (("prompt_tokens", "in"), ("completion_tokens", "out"),
                                                  ("total_tokens", "total")) if k in tokens]
    return "tokens " + " / ".join(parts)


def owner_text(owner: str) -> str:
    kind, _, who = owner.partition(":")
    return f"API key {who[:32]}" if kind == "key" else "a chat-page visitor"


def reply_cell(exchange: Any) -> str:
    if exchange.error:
        return ""
    if not exchange.ended:
        return f'<i style="{MUTED}">waiting for the run</i>'
    return esc(clip(exchange.reply, CELL))


def log_table(rows: list[tuple[Any, Any]]) -> str:
    """The exchanges (with their conversation), one clickable row each: its thread opens below."""
    if not rows:
        return '<div id="cv-log" data-rows="0"><p>No exchange matches these filters.</p></div>'
    heads = "".join(f'<th style="text-align:left;padding:4px 6px">{h}</th>' for h in (
        "time (UTC)", "app", "version", "message", "reply", "rating", "latency", "error"))
    body = "".join(
        f'<tr class="cv-row" tabindex="0" data-pick="exchange" data-conversation="{esc(c.id)}" '
        f'data-message="{esc(e.id)}" data-rating="{esc(e.rating)}" title="Open this conversation">'
        + "".join(f"<td {TD}>{cell}</td>" for cell in (
            esc(when(e.created_at)), esc(c.app_slug), esc(e.version), esc(clip(e.message, CELL)), reply_cell(e),
            RATING_MARKS.get(e.rating, ""), latency(e.latency_ms),
            f'<span class="cv-error" title="{esc(clip(e.error, 300))}">⚠️ failed</span>' if e.error else ""))
        + "</tr>" for e, c in rows)
    return (f'<div id="cv-log" data-rows="{len(rows)}"><table style="width:100%;border-collapse:collapse">'
            f"<thead><tr>{heads}</tr></thead><tbody>{body}</tbody></table></div>")


def _source(source: dict[str, Any]) -> str:
    where = source.get("file") or source.get("document_id") or source.get("id") or "?"
    score = source.get("score")
    scored = f' <span style="{MUTED}">score {score:.3f}</span>' if isinstance(score, int | float) and \
        not isinstance(score, bool) else ""
    return (f'<li class="cv-source"><b>{esc(where)}</b>{scored}: '
            f'<span class="cv-snippet">{esc(clip(str(source.get("content") or ""), SOURCE_SNIPPET))}</span></li>')


def _turn(conversation: Any, exchange: Any) -> str:
    rating = RATING_MARKS.get(exchange.rating, "not rated")
    comment = f" “{esc(exchange.comment)}”" if exchange.comment else ""
    meta = " · ".join((f"#{exchange.position}", esc(when(exchange.created_at)), f"version {esc(exchange.version)}",
                       latency(exchange.latency_ms), tokens_text(exchange.tokens),
                       f'<span class="cv-rating">{rating}{comment}</span>',
                       f'<a class="cv-trace" href="/api/v1/runs/{esc(exchange.run_id)}" target="_blank" '
                       f'rel="noopener">run trace</a>'))
    if exchange.error:
        answer = f'<div class="cv-text cv-failed" style="color:#b91c1c">⚠️ {esc(exchange.error)}</div>'
    elif not exchange.ended:
        answer = f'<div class="cv-text" style="{MUTED}"><i>waiting for the run</i></div>'
    else:
        answer = f'<div class="cv-text cv-reply">{esc(clip(exchange.reply, TURN_TEXT))}</div>'
    sources = "".join(_source(s) for s in exchange.sources or [] if isinstance(s, dict))
    listed = f'<b>Sources</b><ul class="cv-sources">{sources}</ul>' if sources else ""
    return (f'<li class="cv-turn" data-message="{esc(exchange.id)}" data-position="{esc(exchange.position)}">'
            f'<div style="{MUTED};font-size:0.9em">{meta} · <button type="button" class="cv-pick" data-pick="turn" '
            f'data-conversation="{esc(conversation.id)}" data-message="{esc(exchange.id)}">Use for a test case'
            f'</button></div><b>Message</b><div class="cv-text cv-message">{esc(clip(exchange.message, TURN_TEXT))}'
            f"</div><b>Reply</b>{answer}{listed}</li>")


def thread_html(conversation: Any, exchanges: list[Any]) -> str:
    """A whole conversation in order: each turn's message, reply (or error), sources, latency, tokens, rating and
    comment, and a link to its run's trace."""
    line = (f"<p><b>{esc(conversation.title) or '(untitled)'}</b> · app <b>{esc(conversation.app_slug)}</b> · "
            f"{len(exchanges)} turn(s) · from {esc(owner_text(conversation.owner))} · started "
            f"{esc(when(conversation.created_at))} · last {esc(when(conversation.updated_at))} UTC · id "
            f"<code>{esc(conversation.id)}</code></p>")
    turns = "".join(_turn(conversation, e) for e in exchanges)
    return (f'<div id="cv-thread" data-conversation="{esc(conversation.id)}" data-turns="{len(exchanges)}">{line}'
            f'<ol style="padding:0;margin:0">{turns}</ol></div>')


def note(text: str) -> str:
    """A line in the thread's place (nothing chosen, or why it cannot be shown); ``text`` is escaped here."""
    return f'<div id="cv-thread" data-turns="0"><p>{esc(text)}</p></div>'

