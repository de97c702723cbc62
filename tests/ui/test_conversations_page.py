"""The conversations page's handlers, called directly (no browser), on SQLite and PostgreSQL: the log lists
exchanges newest first, 50 a page, by app, version, dates, rating and errors; a bad filter is an error next to its
field, not an exception; a thread shows each turn's reply, sources, tokens, rating and the link to its run; a turn
becomes a test case; deleting asks first; exports follow the filter and quote spreadsheet formulas; user text is
never rendered as HTML. The page answers at ``/conversations`` in the whole web app."""

from __future__ import annotations

import csv
import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update

from apps import publishing
from conversations import threads
from conversations.models import Exchange
from evaluations import testsets
from runs import lifecycle as runs
from runs.models import Run, RunState
from store.db import session_scope
from tests.support.specs import greet
from ui import conversations_page as page
from workflows import crud
from workflows.spec import spec_from_dict

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
DAY = datetime(2026, 11, 1, tzinfo=timezone.utc)


@pytest.fixture
def greeter(database: str) -> None:
    with session_scope() as session:
        crud.create_workflow(session, name="greeter", spec=spec_from_dict(greet()))


def turn(message: str, conversation: str | None = None, *, slug: str = "hi", owner: str = "key:a", version: int = 1,
         at: datetime | None = None) -> tuple[str, str]:
    """A turn as a chat app writes it (the run and the exchange in one transaction); (conversation, message)."""
    logged: dict[str, str] = {}
    with session_scope() as session:
        version_id = crud.get_version_id(session, ref="greeter", number=None)

        def log(run: Run) -> None:
            logged["c"], logged["m"] = threads.log_turn(
                session, conversation, slug=slug, owner=owner, message=message, run_id=run.id, version_id=version_id,
                version=version, reply_output="greeting", sources_output="documents")

        runs.create_run(session, workflow_ref=None, inputs={"name": message}, version_id=version_id, also=log)
        if at is not None:
            session.execute(update(Exchange).where(Exchange.id == logged["m"]).values(created_at=at))
    return logged["c"], logged["m"]


def answer(message: str, outputs: dict[str, Any] | None = None, *, error: str | None = None, rating: int | None = None,
           comment: str | None = None) -> str:
    """The turn's run ends (succeeded with ``outputs``, or failed with ``error``), then it is rated; its run id."""
    with session_scope() as session:
        run_id = session.get(Exchange, message).run_id
        runs.claim(session, run_id, "w")
        runs.finish(session, run_id, "w", RunState.FAILED if error else RunState.SUCCEEDED, outputs=outputs,
                    error=error)
    if rating is not None:
        with session_scope() as session:
            threads.rate(session, message, rating=rating, comment=comment, owner=None)
    return run_id


def shown(table: str) -> list[str]:
    """The message ids of the table's rows, in order."""
    return re.findall(r'<tr class="cv-row"[^>]*data-message="([0-9a-f]{32})"', table)


def listed(**given: Any) -> list[str]:
    values = {"app": page.ANY_APP, "version": "", "since": "", "until": "", "rating": "any", "errors_only": False}
    table, _, _, _, wrong = page.log_view(**{**values, **given})
    assert wrong == {}, wrong
    return shown(table)


def test_the_log_lists_exchanges_newest_first_by_filter_fifty_a_page(greeter):
    with session_scope() as session:
        publishing.publish(session, ref="greeter", slug="hello", message="name", reply="greeting")
    assert page.app_choices() == [page.ANY_APP, "hello"]
    first, early = turn("q1", at=DAY)
    older = [early] + [turn(f"q{n}", first, at=DAY + timedelta(minutes=n))[1] for n in range(2, 52)]
    _, tower = turn("Where is the tower?", slug="hello", owner="visitor:v", version=2,
                    at=datetime(2026, 11, 3, 10, tzinfo=timezone.utc))
    answer(tower, {"greeting": "On the hill."}, rating=-1, comment="vague")
    _, boom = turn("boom", slug="hello", at=datetime(2026, 11, 4, 9, tzinfo=timezone.utc))
    answer(boom, error="the LLM timed out")

    table, line, number, more, wrong = page.log_view(page.ANY_APP, "", "", "", "any", False, 1)
    assert shown(table) == [boom, tower, *reversed(older)][:50] and (number, more, wrong) == (1, True, {})
    assert line == "Exchanges 1–50, newest first · page 1 · more on the next page."
    assert '<td style="border-top:1px solid #e5e7eb;padding:4px 6px;vertical-align:top">2026-11-04 09:00:00</td>' \
        in table and "⚠️ failed" in table and "👎" in table and "On the hill." in table
    table, line, number, more, _ = page.log_view(page.ANY_APP, "", "", "", "any", False, 2)
    assert shown(table) == list(reversed(older))[48:] and (number, more) == (2, False)
    assert line == "Exchanges 51–53, newest first · page 2."
    assert page.log_view(page.ANY_APP, "", "", "", "any", False, 3)[1] == "Page 3: no exchange matches these filters."

    assert listed(app="hello") == [boom, tower]
    assert listed(app="nope") == [] and listed(app="") == listed()
    assert listed(rating="👎") == [tower] and listed(rating="👍") == []
    assert listed(errors_only=True) == [boom]
    assert listed(version="2") == [tower] and listed(version=" 1 ", app="hello") == [boom]
    assert listed(since="2026-11-03", until="2026-11-03") == [tower]         # "to" takes the whole day
    assert listed(since="2026-11-04T00:00") == [boom]
    assert listed(until="2026-11-01T00:30:00+01:00") == []                   # 23:30 UTC the day before
    assert listed(until="2026-11-01T01:00:30+01:00") == [early] == listed(until="2026-11-01T00:00:30")
    empty = page.log_view("nope", "", "", "", "any", False, 1)
    assert empty[1] == "No exchange matches these filters." and 'data-rows="0"' in empty[0]


@pytest.mark.parametrize(("field", "given", "error"), [
    ("version", "abc", "⚠️ Version 'abc' is not a whole number from 1 to 2147483647; leave it empty for all."),
    ("version", "0", "⚠️ Version '0' is not a whole number from 1 to 2147483647; leave it empty for all."),
    ("since", "2026-13-01", "⚠️ From '2026-13-01' is not a date; write a UTC date such as 2026-11-05 (or "
                            "2026-11-05T14:30)."),
    ("until", "yesterday", "⚠️ To 'yesterday' is not a date; write a UTC date such as 2026-11-05 (or "
                           "2026-11-05T14:30)."),
    ("until", "9999-12-31", "⚠️ To '9999-12-31' is not between 1970 and 2999; write a UTC date such as 2026-11-05 "
                            "(or 2026-11-05T14:30)."),
    ("since", "0001-01-01T00:00+05:00", "⚠️ From '0001-01-01T00:00+05:00' is not a date; write a UTC date such as "
                                        "2026-11-05 (or 2026-11-05T14:30)."),
])
def test_a_bad_filter_is_an_error_next_to_its_field_not_an_exception(greeter, field: str, given: str, error: str):
    turn("kept")
    values = {"app": page.ANY_APP, "version": "", "since": "", "until": "", "rating": "any", "errors_only": False,
              field: given}
    table, line, _, more, wrong = page.log_view(**values)
    label = {"version": "Version", "since": "From", "until": "To"}[field]
    assert wrong == {label: error} and line == error and shown(table) == [] and not more
    assert page.export("csv", **values) == (None, error)


def test_to_before_from_is_refused_on_the_to_field(greeter):
    wrong = page.log_view(page.ANY_APP, "", "2026-11-05", "2026-11-04", "any", False)[4]
    assert wrong == {"To": "⚠️ To '2026-11-04' is not after From; pick a later day."}


def test_a_thread_shows_each_turn_with_reply_sources_tokens_rating_and_its_run(greeter):
    conversation, first = turn("Where is the tower?", slug="hello")
    _, second = turn("How tall is it?", conversation, slug="hello")
    run_id = answer(first, {"greeting": [{"text": "On the hill.", "meta": {"usage": {
        "prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}}}], "documents": [
        {"id": "d1", "content": "The tower stands on the hill. " * 20, "score": 0.91234,
         "meta": {"file_path": "guide/tower.md"}}]}, rating=-1, comment="too short")
    answer(second, error="the LLM timed out")

    html = page.thread_view(f" {conversation} ")
    assert f'data-conversation="{conversation}" data-turns="2"' in html
    assert html.index("Where is the tower?") < html.index("On the hill.") < html.index("How tall is it?")
    assert "<b>guide/tower.md</b>" in html and "score 0.912" in html
    assert "The tower stands on the hill. " * 10 + "…</span>" in html                     # a snippet, clipped
    assert "tokens 12 in / 4 out / 16 total" in html and "👎 “too short”" in html and "not rated" in html
    assert f'href="/api/v1/runs/{run_id}"' in html
    assert "⚠️ the run failed: the LLM timed out" in html and "app <b>hello</b>" in html and "API key a" in html
    assert f'data-pick="turn" data-conversation="{conversation}" data-message="{second}"' in html
    assert "Click an exchange in the table" in page.thread_view("")
    assert "⚠️ Conversation id: no conversation &#x27;0000" in page.thread_view("0" * 32)
    assert "no conversation &#x27;&lt;b&gt;&#x27;" in page.thread_view("<b>")


def test_a_turn_becomes_a_test_case_and_a_conversation_is_deleted_after_asking(greeter):
    conversation, message = turn("Where is the tower?", slug="hello")
    _, other = turn("How tall is it?", conversation, slug="hello")
    made = page.make_test_case(message, " from-chat ", " On the hill. ")
    key = f"chat-{message[:16]}"
    assert made == (f"✅ Test set 'from-chat' revision 1: 1 case(s); this message is case {key}. Score a version "
                    "on it under [Evaluations](/evaluations).")
    assert page.make_test_case(other, "from-chat", "").startswith("✅ Test set 'from-chat' revision 2: 2 case(s);")
    with session_scope() as session:
        revision = testsets.revision(session, testsets.get(session, "from-chat"))
        case = testsets.cases_by_key(session, revision.id, [key])[key]
        assert (case.inputs, case.expected_answer) == ({"name": "Where is the tower?"}, "On the hill.")
    assert page.make_test_case("", "from-chat", "x").startswith("⚠️ Message id: open a conversation")
    assert page.make_test_case(message, " ", "x").startswith("⚠️ Test set: type a name")
    assert page.make_test_case("f" * 32, "from-chat", "x").startswith("⚠️ Message id: no message 'ffff")
    assert page.make_test_case(message, "../x", "x").startswith("⚠️ Test set name '../x' must be 1-100 letters")

    assert page.ask_delete(conversation) == (
        "Delete conversation 'Where is the tower?' (hello) and its 2 message(s), with the runs that answered them? "
        "This cannot be undone.", True)
    assert page.ask_delete("") == ("⚠️ Conversation id: click an exchange in the table first.", False)
    assert page.ask_delete("0" * 32)[1] is False
    with session_scope() as session:
        answered = [e.run_id for e in threads.thread(session, conversation)[1]]
    assert page.delete(conversation) == f"✅ Conversation {conversation} deleted with its messages and their runs."
    with session_scope() as session:
        assert [session.get(Run, run_id) for run_id in answered] == [None, None]
    assert "no conversation" in page.thread_view(conversation) and listed() == []
    assert page.delete(conversation).startswith("⚠️ Conversation id: no conversation")


def api_export(**params: str) -> bytes:
    from api.app import create_app

    with TestClient(create_app()) as client:
        exported = client.get("/api/v1/conversations/export", params=params)
    assert exported.status_code == 200, exported.text
    return exported.content


def test_exports_follow_the_filter_and_quote_spreadsheet_formulas(greeter):
    formulas = ['=HYPERLINK("http://evil")', "+1", "-2", "@SUM(A1)", "\tTab", "\rCR", "plain"]
    ids = [turn(text, at=DAY + timedelta(minutes=n))[1] for n, text in enumerate(formulas)]
    answer(ids[-1], {"greeting": "=1+1", "documents": [{"id": "d", "content": "c", "meta": {"file_name": "f.md"}}]},
           rating=-1, comment="-bad")

    path, line = page.export("csv", page.ANY_APP, "", "", "", "any", False)
    assert line == "✅ 7 exchange(s) in conversations.csv." and Path(path).name == "conversations.csv"
    assert Path(path).read_bytes() == api_export(format="csv")     # the API's export is the same file
    with open(path, encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    assert rows[0] == list(threads.EXPORT_COLUMNS)
    column = {name: n for n, name in enumerate(rows[0])}
    assert [r[column["message"]] for r in rows[1:]] == ["plain", "'\rCR", "'\tTab", "'@SUM(A1)", "'-2", "'+1",
                                                        "'=HYPERLINK(\"http://evil\")"]         # newest first
    assert [rows[1][column[c]] for c in ("id", "reply", "rating", "comment", "app")] == [ids[-1], "'=1+1", "down",
                                                                                       "'-bad", "hi"]

    path, line = page.export("jsonl", page.ANY_APP, "", "", "", "👎", False)
    records = [json.loads(text) for text in Path(path).read_text(encoding="utf-8").splitlines()]
    assert line == "✅ 1 exchange(s) in conversations.jsonl." and len(records) == 1
    assert Path(path).read_bytes() == api_export(format="jsonl", rating="down")
    assert {k: records[0][k] for k in ("id", "message", "reply", "rating", "comment")} == {
        "id": ids[-1], "message": "plain", "reply": "=1+1", "rating": "down", "comment": "-bad"}  # data, not cells
    assert records[0]["sources"][0]["file"] == "f.md" and records[0]["latency_ms"] is not None
    assert page.export("jsonl", "nope", "", "", "", "any", False)[1] == "✅ 0 exchange(s) in conversations.jsonl."


def test_user_text_renders_inert(greeter):
    conversation, message = turn(HOSTILE, slug="<b>app</b>", owner=f"key:{HOSTILE}")
    answer(message, {"greeting": HOSTILE, "documents": [{"id": HOSTILE, "content": HOSTILE,
                                                         "meta": {"file_path": HOSTILE}}]},
           rating=1, comment=HOSTILE)
    with session_scope() as session:
        session.execute(update(Exchange).where(Exchange.id == message).values(error=HOSTILE))
    for html in (page.log_view(page.ANY_APP, "", "", "", "any", False)[0], page.thread_view(conversation)):
        assert "<script" not in html and "<img" not in html and "<b>app</b>" not in html, html
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in html and "&lt;b&gt;app&lt;/b&gt;" in html
    said = page.ask_delete(conversation)[0]
    assert "<script" not in said and "&lt;script&gt;" in said


def test_the_page_answers_at_its_path_and_takes_no_uploads(client: TestClient):
    moved = client.get("/conversations", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "/conversations/"
    shown_page = client.get("/conversations")
    assert shown_page.status_code == 200 and "text/html" in shown_page.headers["content-type"]
    refused = client.post("/conversations/gradio_api/upload",
                          files={"files": ("a.csv", b"x" * 10, "application/octet-stream")})
    assert refused.status_code == 413 and "takes no file uploads" in refused.json()["error"]["message"]
