"""Chat logs in the browser: ``/conversations``.

The PM's view of what published apps were asked: every exchange, newest first, filtered by app, version, date,
rating and errors, 50 a page; a click on one opens its whole conversation (each turn's reply, sources, latency,
tokens, rating and comment, and its run's trace); a turn becomes a case of a test set; a conversation is deleted
after a confirmation; the filtered exchanges download as CSV or JSONL. Handlers are plain functions (tested
without a browser) over ``conversations.threads``; the HTML they show is drawn by ``ui._conversations_html``.
Mounted by ``ui.app.mount`` before the editor at ``/``.
"""

from __future__ import annotations

import html
import tempfile
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import gradio as gr
from fastapi import FastAPI
from pydantic import ValidationError

from apps import publishing
from conversations import threads
from stackyard.errors import NotFound, StackyardError
from store.db import session_scope
from ui import fields
from ui._conversations_html import CSS, JS_ON_LOAD, log_table, note, thread_html
from ui.pages import mount_page
from workflows.bounds import INT32_MAX

PATH = "/conversations"
PAGE_ROWS = 50
ANY_APP = "all apps"          # not a slug (slugs have no spaces): an unpublished app's log can still be typed
RATINGS = {"any": None, "👍": 1, "👎": -1}
DATE_HINT = "; write a UTC date such as 2026-11-05 (or 2026-11-05T14:30)"
MARKDOWN = set("\\`*_[]~|")


def _md(text: str) -> str:
    """User text inside a Markdown line: no HTML, and no emphasis, code or link syntax of its own."""
    return "".join("\\" + c if c in MARKDOWN else c for c in html.escape(text, quote=False))


def _fail(exc: Exception, label: str) -> str:
    """The ⚠️ line: the error after the page field it is about, unless it names that field already."""
    message = str(exc)
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        message = f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}."
    if not message.lower().startswith(label.lower()):
        message = f"{label}: {message}"
    return f"⚠️ {_md(message)}"


def _when(value: str | None, field: str, *, end: bool = False) -> datetime | None:
    """A typed date (a whole UTC day: ``end`` takes its end) or date and time (UTC unless it says otherwise)."""
    text = (value or "").strip()
    if not text:
        return None
    day = True
    try:
        try:
            moment = datetime.combine(date.fromisoformat(text), time(), tzinfo=timezone.utc)
        except ValueError:
            moment, day = datetime.fromisoformat(text), False
            moment = moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)
    except (ValueError, OverflowError):
        raise fields.FieldInvalid(f"{field} '{text[:40]}' is not a date{DATE_HINT}.", field=field) from None
    if not 1970 <= moment.year <= 2999:
        raise fields.FieldInvalid(f"{field} '{text[:40]}' is not between 1970 and 2999{DATE_HINT}.", field=field)
    return moment + timedelta(days=1) if day and end else moment


def filters(app: str | None, version: Any, since: str | None, until: str | None, rating: str | None,
            errors_only: bool | None) -> dict[str, Any]:
    """The log's filters as ``conversations.threads`` takes them; a bad field raises ``FieldInvalid`` naming it."""
    chosen = (app or "").strip()
    start, end = _when(since, "From"), _when(until, "To", end=True)
    if start is not None and end is not None and end <= start:
        raise fields.FieldInvalid(f"To '{until.strip()[:40]}' is not after From; pick a later day.", field="To")
    return {"app": None if chosen in ("", ANY_APP) else chosen[:64],
            "version": fields.whole_number(version, field="Version", high=INT32_MAX, hint="; leave it empty for all"),
            "since": start, "until": end, "rating": RATINGS.get(rating or "any"), "errors": True if errors_only else None}


def app_choices() -> list[str]:
    """"all apps", then each published app's slug."""
    with session_scope() as session:
        return [ANY_APP, *(p.slug for p in publishing.list_publications(session))]


def log_view(app: str | None, version: Any, since: str | None, until: str | None, rating: str | None,
             errors_only: bool | None, page: Any = 1) -> tuple[str, str, int, bool, dict[str, str]]:
    """One page of matching exchanges: (the table, its line, the page shown, whether a next page has any, the
    filter fields' errors by field)."""
    shown = max(int(page or 1), 1)
    try:
        chosen = filters(app, version, since, until, rating, errors_only)
    except fields.FieldInvalid as exc:
        return log_table([]), _fail(exc, exc.field), shown, False, {exc.field: _fail(exc, exc.field)}
    with session_scope() as session:
        rows = threads.list_exchanges(session, limit=PAGE_ROWS + 1, offset=(shown - 1) * PAGE_ROWS, **chosen)
        more, rows = len(rows) > PAGE_ROWS, rows[:PAGE_ROWS]
        table = log_table(rows)
    first = (shown - 1) * PAGE_ROWS
    if rows:
        line = (f"Exchanges {first + 1}–{first + len(rows)}, newest first · page {shown}"
                + (" · more on the next page." if more else "."))
    else:
        line = f"Page {shown}: no exchange matches these filters." if shown > 1 else "No exchange matches these filters."
    return table, line, shown, more, {}


def thread_view(conversation_id: str | None) -> str:
    """The whole conversation, turn by turn."""
    chosen = (conversation_id or "").strip()
    if not chosen:
        return note("Click an exchange in the table (or type a conversation id) to read its whole conversation.")
    try:
        with session_scope() as session:
            conversation, exchanges = threads.thread(session, chosen)
            return thread_html(conversation, exchanges)
    except NotFound:
        return note(f"⚠️ Conversation id: no conversation '{chosen[:64]}' (deleted, or never kept); click an "
                    "exchange in the table.")


def make_test_case(message_id: str | None, test_set: str | None, expected_answer: str | None) -> str:
    """The message as a case of ``test_set`` (its next revision; a new set if there is none)."""
    chosen, name = (message_id or "").strip(), (test_set or "").strip()
    if not chosen:
        return "⚠️ Message id: open a conversation and click “Use for a test case” under a turn."
    if not name:
        return "⚠️ Test set: type a name (a new test set is made when none has it)."
    try:
        with session_scope() as session:
            made, key = threads.to_test_case(session, chosen, test_set=name, expected_answer=(expected_answer or "")
                                             .strip() or None, expected_sources=[])
            number, count = made.number, made.case_count
    except NotFound as exc:
        if exc.field != "message_id":
            return _fail(exc, "Test set")
        return f"⚠️ Message id: no message '{_md(chosen[:64])}'; click “Use for a test case” under a turn."
    except (StackyardError, ValidationError, ValueError) as exc:
        return _fail(exc, "Test set")
    return (f"✅ Test set '{_md(name)}' revision {number}: {count} case(s); this message is case {key}. Score a "
            "version on it under [Evaluations](/evaluations).")


def ask_delete(conversation_id: str | None) -> tuple[str, bool]:
    """The confirmation's question (and whether to show its buttons): what deleting would remove."""
    chosen = (conversation_id or "").strip()
    if not chosen:
        return "⚠️ Conversation id: click an exchange in the table first.", False
    try:
        with session_scope() as session:
            conversation, exchanges = threads.thread(session, chosen)
            what = f"'{_md(conversation.title[:80])}' ({_md(conversation.app_slug)}) and its {len(exchanges)} message(s)"
    except NotFound:
        return f"⚠️ Conversation id: no conversation '{_md(chosen[:64])}'.", False
    return f"Delete conversation {what}, with the runs that answered them? This cannot be undone.", True


def delete(conversation_id: str | None) -> str:
    """Delete the conversation and every message of it (after :func:`ask_delete`)."""
    chosen = (conversation_id or "").strip()
    try:
        with session_scope() as session:
            threads.delete_conversation(session, chosen)
    except NotFound:
        return f"⚠️ Conversation id: no conversation '{_md(chosen[:64])}'; nothing was deleted."
    return f"✅ Conversation {_md(chosen)} deleted with its messages and their runs."


def export(kind: str, app: str | None, version: Any, since: str | None, until: str | None, rating: str | None,
           errors_only: bool | None) -> tuple[str | None, str]:
    """Every exchange the filters select, as a CSV or JSONL file (a page at a time): (its path, the line)."""
    try:
        chosen = filters(app, version, since, until, rating, errors_only)
    except fields.FieldInvalid as exc:
        return None, _fail(exc, exc.field)
    path = Path(tempfile.mkdtemp(prefix="stackyard-conversations-")) / f"conversations.{kind}"
    count = -1 if kind == "csv" else 0          # the CSV's header is not an exchange
    with path.open("w", encoding="utf-8", newline="") as out:
        for line in threads.export_lines(kind, **chosen):
            out.write(line)
            count += 1
    return str(path), f"✅ {count} exchange(s) in {path.name}."


def build() -> gr.Blocks:
    with gr.Blocks(title="Stackyard conversations") as page:
        gr.Markdown("## Conversations\nWhat people asked your published apps and what they were answered, newest "
                    "first. Click an exchange to read its whole conversation; turn a bad reply into a test case.")
        with gr.Row(equal_height=False):
            app = gr.Dropdown([ANY_APP], value=ANY_APP, label="App", allow_custom_value=True, elem_id="cv-app")
            boxes, errors = {}, {}
            for field, label, hint in (("Version", "Version", "all"), ("From", "From (UTC date)", "2026-11-01"),
                                       ("To", "To (UTC date, included)", "2026-11-30")):
                with gr.Column(min_width=160):
                    boxes[field] = gr.Textbox(label=label, placeholder=hint, max_lines=1,
                                              elem_id=f"cv-{field.lower()}")
                    errors[field] = gr.Markdown(elem_id=f"cv-{field.lower()}-error")
            rating = gr.Radio(list(RATINGS), value="any", label="Rating", elem_id="cv-rating")
            errors_only = gr.Checkbox(label="Errors only", elem_id="cv-errors")
        with gr.Row():
            apply_btn = gr.Button("Apply filters", variant="primary", elem_id="cv-apply")
            prev_btn = gr.Button("← Newer", interactive=False, elem_id="cv-prev")
            next_btn = gr.Button("Older →", interactive=False, elem_id="cv-next")
            csv_btn = gr.Button("Export CSV", elem_id="cv-export-csv")
            jsonl_btn = gr.Button("Export JSONL", elem_id="cv-export-jsonl")
        line = gr.Markdown(elem_id="cv-line")
        log = gr.HTML(log_table([]), js_on_load=JS_ON_LOAD, css_template=CSS, elem_id="cv-log-box")
        with gr.Row():
            download = gr.File(label="Export", interactive=False, elem_id="cv-export")
            export_line = gr.Markdown(elem_id="cv-export-line")

        gr.Markdown("### Conversation")
        with gr.Row():
            conversation_id = gr.Textbox(label="Conversation id", max_lines=1, elem_id="cv-conversation-id")
            open_btn = gr.Button("Open", elem_id="cv-open")
            delete_btn = gr.Button("Delete conversation", variant="stop", elem_id="cv-delete")
        with gr.Row(visible=False) as confirm_row:
            confirm_line = gr.Markdown(elem_id="cv-confirm-line")
            confirm_btn = gr.Button("Yes, delete it", variant="stop", elem_id="cv-confirm-delete")
            cancel_btn = gr.Button("Keep it", elem_id="cv-cancel-delete")
        delete_line = gr.Markdown(elem_id="cv-delete-line")
        thread = gr.HTML(thread_view(""), js_on_load=JS_ON_LOAD, css_template=CSS, elem_id="cv-thread-box")

        gr.Markdown("### Make a test case\nThe message becomes a case of the test set (its next revision), with the "
                    "answer it should have had: every evaluation of the set checks new versions against it.")
        with gr.Row():
            message_id = gr.Textbox(label="Message id", max_lines=1, elem_id="cv-message-id")
            test_set = gr.Textbox(label="Test set", placeholder="from-chat", max_lines=1, elem_id="cv-test-set")
            expected = gr.Textbox(label="Expected answer", lines=2, elem_id="cv-expected")
            case_btn = gr.Button("Make a test case", variant="primary", elem_id="cv-make-case")
        case_line = gr.Markdown(elem_id="cv-case-line")
        shown, asked = gr.State(1), gr.State("")

        inputs = [app, boxes["Version"], boxes["From"], boxes["To"], rating, errors_only]
        outputs = [log, line, shown, prev_btn, next_btn, *errors.values()]

        def listing(*values: Any) -> tuple:
            table, said, number, more, wrong = log_view(*values)
            return (table, said, number, gr.update(interactive=number > 1), gr.update(interactive=more),
                    *(wrong.get(field, "") for field in errors))

        def picked(event: gr.EventData) -> tuple[str, str]:
            return (str(getattr(event, "conversation", ""))[:64], str(getattr(event, "message", ""))[:64])

        def turn_picked(event: gr.EventData) -> str:
            return picked(event)[1]

        def confirm(chosen: str) -> tuple[str, Any, str]:   # what the question names is what "Yes" deletes
            said, ok = ask_delete(chosen)
            return said, gr.update(visible=ok), chosen.strip() if ok else ""

        page.load(lambda *v: (gr.update(choices=app_choices()), *listing(*v, 1)), inputs, [app, *outputs])
        for trigger in (apply_btn.click, app.change, rating.change, errors_only.change,
                        *(box.submit for box in boxes.values())):
            trigger(lambda *v: listing(*v, 1), inputs, outputs)
        prev_btn.click(lambda *v: listing(*v[:-1], v[-1] - 1), [*inputs, shown], outputs)
        next_btn.click(lambda *v: listing(*v[:-1], v[-1] + 1), [*inputs, shown], outputs)
        csv_btn.click(lambda *v: export("csv", *v), inputs, [download, export_line])
        jsonl_btn.click(lambda *v: export("jsonl", *v), inputs, [download, export_line])
        log.click(picked, None, [conversation_id, message_id]).then(thread_view, [conversation_id], [thread])
        thread.click(turn_picked, None, [message_id])
        conversation_id.submit(thread_view, [conversation_id], [thread])
        open_btn.click(thread_view, [conversation_id], [thread])
        delete_btn.click(confirm, [conversation_id], [confirm_line, confirm_row, asked])
        cancel_btn.click(lambda: ("", gr.update(visible=False), ""), None, [confirm_line, confirm_row, asked])
        confirm_btn.click(delete, [asked], [delete_line]).then(
            lambda: (gr.update(visible=False), "", thread_view("")), None, [confirm_row, conversation_id, thread]).then(
            lambda *v: listing(*v[:-1], v[-1]), [*inputs, shown], outputs)
        case_btn.click(make_test_case, [message_id, test_set, expected], [case_line])
    return page


def mount_conversations(app: FastAPI) -> None:
    """Serve the page at ``/conversations`` (it takes no uploads)."""
    mount_page(app, build(), PATH)
