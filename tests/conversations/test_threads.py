"""Conversations in SQL: a turn is written with its run or not at all, only its owner continues or rates it (an
unknown id and someone else's are the same 404), an exchange is settled from its run once it ends, retention
deletes old conversations with their messages, and a reply becomes a test case."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlmodel import col, select

from conversations import threads
from conversations.models import Conversation, Exchange
from runs import lifecycle as runs
from runs.models import Run, RunState
from stackyard.errors import NotFound
from store.clock import utcnow
from store.db import session_scope
from tests.support.specs import greet
from worker.reaper import purge_conversations
from workflows import crud
from workflows.spec import spec_from_dict


def turn(owner: str, message: str, conversation_id: str | None = None, *, fail: bool = False,
         history: list[dict[str, str]] | None = None) -> tuple[str, str]:
    """A turn as a chat app writes it: the run (given the history the memory policy kept) and the exchange in one
    transaction."""
    logged = {}
    with session_scope() as session:
        version_id = crud.get_version_id(session=session, ref="greeter", number=None)

        def log(run: Run) -> None:
            logged["conversation"], logged["message"] = threads.log_turn(
                session, conversation_id, slug="hi", owner=owner, message=message, run_id=run.id,
                version_id=version_id, version=1, reply_output="greeting", sources_output=None)
            if fail:
                raise RuntimeError("the database went away")

        runs.create_run(session, workflow_ref=None, inputs={"name": message, "history": history or []},
                        version_id=version_id, also=log)
    return logged["conversation"], logged["message"]


@pytest.fixture
def greeter(database):
    """A greeting workflow with a history input, as a chat app with memory declares one."""
    spec = greet()
    spec["components"]["p"]["init_parameters"]["template"] += "{% for m in history %} {{ m.content }}{% endfor %}"
    spec["inputs"]["history"] = ["p.history"]
    with session_scope() as session:
        crud.create_workflow(session, name="greeter", spec=spec_from_dict(spec))


def test_a_turn_is_written_with_its_run_and_continued_by_its_owner_only(greeter):
    conversation, first = turn("key:a", "Ada")
    again, second = turn("key:a", "Bob", conversation)
    assert again == conversation and first != second
    with pytest.raises(RuntimeError):
        turn("key:a", "Cy", conversation, fail=True)
    with session_scope() as session:
        rows = session.exec(select(Exchange).order_by(Exchange.position)).all()
        assert [(e.position, e.message) for e in rows] == [(1, "Ada"), (2, "Bob")]
        assert len(session.exec(select(Run)).all()) == 2                 # the failed turn left no run either
        assert session.get(Conversation, conversation).exchanges == 2
    for slug, owner, given in (("hi", "key:b", conversation), ("hi", "key:a", "0" * 32), ("hi", "key:a", "x" * 500),
                               ("hi", "key:a", "\x00"), ("other", "key:a", conversation)):   # another app's too
        with session_scope() as session, pytest.raises(NotFound, match="No conversation") as missing:
            threads.history(session, given, slug=slug, owner=owner, turns=10)
        assert missing.value.field == "conversation_id"
        with session_scope() as session, pytest.raises(NotFound, match="No conversation"):
            threads.log_turn(session, given, slug=slug, owner=owner, message="hi", run_id="r", version_id="v",
                             version=1, reply_output="greeting", sources_output=None)
    with session_scope() as session, pytest.raises(NotFound, match="No message"):
        threads.rate(session, first, rating=-1, comment=None, owner="key:b")
    with session_scope() as session, pytest.raises(NotFound, match="No message"):
        threads.rate(session, first, rating=-1, comment=None, owner="key:a", slug="another-app")
    with session_scope() as session:
        rated = threads.rate(session, first, rating=-1, comment="wrong", owner="key:a", slug="hi")
        assert (rated.rating, rated.comment, rated.message) == (-1, "wrong", "Ada")
    with session_scope() as session:
        assert (session.get(Exchange, first).rating, session.get(Exchange, first).comment) == (-1, "wrong")
    hostile, message = turn("key:a", "a\x00b")               # PostgreSQL refuses NUL in text: stored replaced
    with session_scope() as session:
        assert session.get(Exchange, message).message == "a\ufffdb"
        assert session.get(Conversation, hostile).title == "a\ufffdb"


def test_an_exchange_is_settled_from_its_run_and_read_as_history(greeter):
    conversation, message = turn("visitor:v", "Ada")
    with session_scope() as session:
        exchange = session.get(Exchange, message)
        run = runs.claim(session, exchange.run_id, "w")
        assert run is not None
        runs.finish(session, exchange.run_id, "w", RunState.SUCCEEDED, outputs={"greeting": "Hello Ada"})
    with session_scope() as session:
        history = threads.history(session, conversation, slug="hi", owner="visitor:v", turns=10)
        assert history == [{"role": "user", "content": "Ada"}, {"role": "assistant", "content": "Hello Ada"}]
        assert not session.get(Exchange, message).ended          # the hot path reads; the logs settle
        threads.settle(session, [session.get(Exchange, message)])
    with session_scope() as session:
        assert threads.history(session, conversation, slug="hi", owner="visitor:v", turns=10) == history
        settled = session.get(Exchange, message)
        assert settled.ended and settled.reply == "Hello Ada" and settled.latency_ms is not None


def test_retention_deletes_old_conversations_with_their_messages_and_a_reply_becomes_a_test_case(greeter):
    from evaluations import testsets

    old, message = turn("key:a", "Where is the tower?")
    kept, _ = turn("key:a", "new")
    with session_scope() as session:
        made, key = threads.to_test_case(session, message, test_set="from-chat", expected_answer="On the hill.",
                                         expected_sources=[])
        case = testsets.cases_by_key(session, made.id, [key])[key]
        assert (case.inputs, case.expected_answer) == ({"name": "Where is the tower?", "history": []},
                                                        "On the hill.")
        session.get(Conversation, old).updated_at = utcnow() - timedelta(days=91)
    with session_scope() as session:
        old_runs = [e.run_id for e in session.exec(select(Exchange).where(Exchange.conversation_id == old)).all()]
    assert purge_conversations() == 1            # the reaper, with the default 90 days
    assert purge_conversations() == 0
    with session_scope() as session:             # the runs that answered went too: their inputs hold the messages
        assert session.exec(select(Run).where(col(Run.id).in_(old_runs))).all() == []
    with session_scope() as session:
        assert [c.id for c in session.exec(select(Conversation)).all()] == [kept]
        assert [e.message for e in session.exec(select(Exchange)).all()] == ["new"]
        assert threads.purge(session, before=utcnow() + timedelta(days=1)) == 1    # everything before tomorrow
    with session_scope() as session:
        assert session.exec(select(Run)).all() == session.exec(select(Exchange)).all() == []


def test_a_follow_up_becomes_a_case_asked_in_its_context_with_the_oldest_history_cut_to_fit(greeter):
    from evaluations import testsets
    from evaluations.importing import MAX_FIELD_CHARS

    said = [{"role": "user", "content": "Tell me about the tower."}, {"role": "assistant", "content": "It is old."}]
    conversation, _ = turn("key:a", "Tell me about the tower.")
    _, follow_up = turn("key:a", "How tall is it?", conversation, history=said)
    long_ago = [{"role": "user" if n % 2 == 0 else "assistant", "content": f"{n} " + "x" * 9_000} for n in range(30)]
    _, crowded = turn("key:a", "And its age?", conversation, history=long_ago + said)
    with session_scope() as session:
        made, key = threads.to_test_case(session, follow_up, test_set="ctx", expected_answer="40 m",
                                         expected_sources=[])
        made, cut_key = threads.to_test_case(session, crowded, test_set="ctx", expected_answer=None,
                                             expected_sources=[])
        cases = testsets.cases_by_key(session, made.id, [key, cut_key])
    assert cases[key].inputs == {"name": "How tall is it?", "history": said}     # what the workflow was given
    kept = cases[cut_key].inputs["history"]
    assert kept[-2:] == said and len(kept) < len(long_ago) + 2                  # the newest kept, the oldest cut
    assert kept == (long_ago + said)[-len(kept):] and len(json.dumps(cases[cut_key].inputs)) <= MAX_FIELD_CHARS


def test_on_postgresql_a_turn_is_one_statement_and_its_history_one_more(greeter):
    from sqlalchemy import event

    from store.db import autocommit_scope, get_engine

    if not threads.turns_in_one_statement():
        pytest.skip("SQLite writes a turn in a transaction (the test above)")
    statements: list[str] = []
    event.listen(get_engine(), "before_cursor_execute", lambda *args: statements.append(args[2]))

    def start(owner: str, message: str, conversation_id: str | None, reply_output: str = "greeting"):
        with autocommit_scope() as session:
            version_id = crud.get_version_id(session=session, ref="greeter", number=None)
            run = runs.prepare_run(session, workflow_ref=None, inputs={"name": message, "history": []},
                                   version_id=version_id)
            statements.clear()
            logged = threads.start_turn(session, run, conversation_id, slug="hi", owner=owner, message=message,
                                        version=1, reply_output=reply_output, sources_output=None)
            assert len(statements) == 1, statements                 # the run, the position and the exchange
            return logged, run.id

    (conversation, first), first_run = start("key:a", "Ada", None)
    (again, second), _ = start("key:a", "Bob", conversation)
    (_, third), _ = start("key:a", "Cy", conversation, reply_output="renamed")     # a version naming it otherwise
    assert again == conversation
    for owner, given in (("key:b", conversation), ("key:a", "0" * 32), ("key:a", "x" * 40)):
        with pytest.raises(NotFound, match="No conversation"):
            start(owner, "Eve", given)
    with session_scope() as session:
        assert [(e.id, e.position, e.run_id is not None) for e in session.exec(
            select(Exchange).order_by(Exchange.position)).all()] == [(first, 1, True), (second, 2, True),
                                                                     (third, 3, True)]
        assert len(session.exec(select(Run)).all()) == 3               # a refused turn wrote no run
        made = session.get(Conversation, conversation)
        assert (made.exchanges, made.title, made.owner) == (3, "Ada", "key:a")
        assert session.get(Run, first_run).inputs == {"name": "Ada", "history": []}
        for message, reply in ((first, "Hello Ada"), (third, "Hello Cy")):
            run_id = session.get(Exchange, message).run_id
            runs.claim(session, run_id, "w")
            outputs = {"greeting": reply} if message == first else {"renamed": reply}
            runs.finish(session, run_id, "w", RunState.SUCCEEDED, outputs=outputs)
    with autocommit_scope() as session:
        statements.clear()
        history = threads.history(session, conversation, slug="hi", owner="key:a", turns=10, reply_output="greeting")
        assert len(statements) == 2                 # the turns with their replies; the one under another name
        assert history == [{"role": "user", "content": "Ada"}, {"role": "assistant", "content": "Hello Ada"},
                           {"role": "user", "content": "Bob"},            # its run has not ended
                           {"role": "user", "content": "Cy"}, {"role": "assistant", "content": "Hello Cy"}]
        statements.clear()
        assert threads.history(session, conversation, slug="hi", owner="key:a", turns=2,
                               reply_output="greeting")[0] == {"role": "user", "content": "Bob"}
        assert len(statements) == 2
        statements.clear()
        threads.history(session, conversation, slug="hi", owner="key:a", turns=1, reply_output="renamed")
        assert len(statements) == 1                 # every reply read with its turn


def test_on_postgresql_a_turn_reads_its_conversation_by_id_however_many_the_caller_owns(greeter):
    """An API key serving many end users owns thousands of conversations. On a database whose statistics were not
    gathered yet (a new installation, a restore), PostgreSQL chose the owner's index for the history read and read
    every conversation of the owner once per exchange; each turn must read its own conversation row, by id."""
    from sqlalchemy import insert, text

    from store.db import autocommit_scope

    if not threads.turns_in_one_statement():
        pytest.skip("SQLite looks rows up by primary key whatever the other conditions")
    conversation, message = turn("key:many", "Ada")
    for n in range(19):
        turn("key:many", f"turn {n}", conversation)
    now = utcnow()
    with session_scope() as session:
        session.execute(insert(Conversation), [{"id": f"{n:032x}", "app_slug": "hi", "owner": "key:many",
                                                "created_at": now, "updated_at": now} for n in range(400)])

    def conversations_read(action) -> int:
        """Rows of the conversation table ``action`` read (scanned or fetched through an index): the counts this
        connection has not reported yet, before and after it."""
        count = text("SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'conversation'")
        with session_scope() as session:
            before = session.execute(count).scalar_one()
            action(session)
            return session.execute(count).scalar_one() - before

    def start(session) -> None:
        version_id = crud.get_version_id(session=session, ref="greeter", number=None)
        run = runs.prepare_run(session, workflow_ref=None, inputs={"name": "Bo", "history": []}, version_id=version_id)
        threads.start_turn(session, run, conversation, slug="hi", owner="key:many", message="Bo", version=1,
                           reply_output="greeting", sources_output=None)

    read = {"history": conversations_read(lambda session: threads.history(
                session, conversation, slug="hi", owner="key:many", turns=20, reply_output="greeting")),
            "turn": conversations_read(start),
            "rating": conversations_read(lambda session: threads.rate(session, message, rating=1, comment=None,
                                                                      owner="key:many", slug="hi"))}
    assert read["history"] <= 2 and read["turn"] <= 4 and read["rating"] <= 2, read     # not 20 × 401, nor 401
    with autocommit_scope() as session:
        assert len(threads.history(session, conversation, slug="hi", owner="key:many", turns=30)) == 21
        for owner, slug in (("key:other", "hi"), ("key:many", "other")):        # still only theirs, of that app
            with pytest.raises(NotFound):
                threads.history(session, conversation, slug=slug, owner=owner, turns=5)
            with pytest.raises(NotFound):
                threads.rate(session, message, rating=-1, comment=None, owner=owner, slug=slug)


def test_on_postgresql_a_history_reads_each_turns_run_by_id_however_many_runs_there_are(greeter):
    """Every chat turn is a run, so the run table grows by one a turn. On a database whose statistics were not
    gathered yet, PostgreSQL joined a history's unsettled replies by reading the run table once per exchange (20 ×
    every run: 2.5 ms a history read at 800 runs); each reply must be read from its own run, by id."""
    from sqlalchemy import insert, text, update

    if not threads.turns_in_one_statement():
        pytest.skip("SQLite looks rows up by primary key whatever the other conditions")
    conversation, _ = turn("key:a", "turn 0")
    for n in range(1, 20):
        turn("key:a", f"turn {n}", conversation)
    with session_scope() as session:
        version_id = crud.get_version_id(session=session, ref="greeter", number=None)
        workflow_id = session.exec(select(Run.workflow_id)).first()
        session.execute(insert(Run), [{"id": f"{n:032x}", "workflow_id": workflow_id, "version_id": version_id,
                                       "inputs": {"name": "x"},
                                       "state": RunState.SUCCEEDED, "outputs": {"greeting": "other"}}
                                      for n in range(800)])
        session.execute(update(Run).where(col(Run.id).in_(select(Exchange.run_id))).values(
            state=RunState.SUCCEEDED, outputs={"greeting": "Hello"}))     # answered, not settled into the log yet
    count = text("SELECT seq_tup_read + idx_tup_fetch FROM pg_stat_xact_user_tables WHERE relname = 'run'")
    with session_scope() as session:
        before = session.execute(count).scalar_one()
        history = threads.history(session, conversation, slug="hi", owner="key:a", turns=20, reply_output="greeting")
        read = session.execute(count).scalar_one() - before
    assert history == [m for n in range(20) for m in ({"role": "user", "content": f"turn {n}"},
                                                      {"role": "assistant", "content": "Hello"})]
    assert read <= 20, read                                   # one run a turn, not 20 × 820
