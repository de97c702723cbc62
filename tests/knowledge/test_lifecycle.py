"""A document's indexing states: one worker claims it, its attempt moves it on, a superseded attempt stops, and
only finished documents are queued again."""

from __future__ import annotations

import pytest

from knowledge import bases, lifecycle
from knowledge.documents import text_source
from knowledge.models import DocState, KbDocument
from stackyard.settings import get_settings
from store.db import session_scope


@pytest.fixture
def document(database) -> str:
    with session_scope() as session:
        base = bases.create(session, get_settings(), name="handbook")
        added = bases.add_documents(session, base, [text_source("policy", "Thirty days of vacation.")])
        return added.added[0].id


def state(document_id: str) -> KbDocument:
    with session_scope() as session:
        return session.get(KbDocument, document_id)


def test_one_claim_wins_and_the_attempt_walks_to_done(document):
    with session_scope() as session:
        claimed = lifecycle.claim(session, document)
        assert lifecycle.claim(session, document) is None          # a second delivery finds it taken
        assert claimed.state == DocState.PARSING and claimed.attempts == 1
        step = lifecycle.embedding(session, lifecycle.splitting(session, claimed), 0.5)
        step = lifecycle.embedding(session, step, 0.75)              # progress while embedding
        assert state(document).progress == 0.0                       # not committed yet: the caller commits
    assert state(document).progress == 0.75
    with session_scope() as session:
        assert lifecycle.done(session, step, 3, 1).state == DocState.DONE
    assert (state(document).chunk_count, state(document).finished_at is not None) == (3, True)


def test_an_attempt_that_lost_its_document_stops(document):
    with session_scope() as session:
        first = lifecycle.claim(session, document)
        lifecycle.fail(session, first, "converter crashed")
        assert lifecycle.requeue(session, document).state == DocState.QUEUED
        second = lifecycle.claim(session, document)
        assert second.attempts == 2
        with pytest.raises(lifecycle.Superseded):
            lifecycle.splitting(session, first)                      # the first attempt is not the document's now
        assert lifecycle.requeue(session, document) is None          # in work: not queued twice


def test_counts_and_status_follow_the_documents(document):
    with session_scope() as session:
        base = bases.get(session, "handbook")
        counted = lifecycle.counts(session, base.id)
        assert (counted["queued"], counted["chunks"], lifecycle.status(counted)) == (1, 0, "indexing")
        lifecycle.fail(session, lifecycle.claim(session, document), "boom")
        assert lifecycle.status(lifecycle.counts(session, base.id)) == "error"


def test_a_document_whose_worker_died_is_queued_again_until_the_attempt_cap(document):
    from datetime import timedelta

    from store.clock import utcnow

    def take_back() -> list[str]:
        with session_scope() as session:
            return lifecycle.take_back_stale(session, stale_before=utcnow() - timedelta(seconds=15), max_attempts=2,
                                             gave_up="gave up: the worker died each time")

    with session_scope() as session:
        lifecycle.splitting(session, lifecycle.claim(session, document))
    assert take_back() == []                                          # beating: alive
    with session_scope() as session:
        session.get(KbDocument, document).heartbeat_at = utcnow() - timedelta(seconds=20)
    assert take_back() == [document] and state(document).state == DocState.QUEUED
    with session_scope() as session:
        lifecycle.claim(session, document)
        session.get(KbDocument, document).heartbeat_at = utcnow() - timedelta(seconds=20)
    assert take_back() == []
    assert (state(document).state, state(document).error) == (DocState.ERROR, "gave up: the worker died each time")


def test_only_the_attempt_holding_a_document_renews_its_heartbeat(document):
    with session_scope() as session:
        first = lifecycle.claim(session, document)
        assert lifecycle.beat(session, document, first.attempts)
        lifecycle.fail(session, first, "boom")
        assert not lifecycle.beat(session, document, first.attempts)       # ended: nothing to renew
        lifecycle.requeue(session, document)
        second = lifecycle.claim(session, document)
        assert not lifecycle.beat(session, document, first.attempts)       # another attempt holds it
        assert lifecycle.beat(session, document, second.attempts)


def test_a_queued_document_whose_message_went_out_before_the_empty_look_is_sent_again_once(document):
    from datetime import timedelta

    from store.clock import utcnow

    with session_scope() as session:
        assert lifecycle.resend_lost(session, lost_before=utcnow() - timedelta(seconds=60)) == []   # sent just now
        assert lifecycle.resend_lost(session, lost_before=utcnow() + timedelta(seconds=1)) == [document]
    with session_scope() as session:               # stamped as sent: the next look finds it young again
        assert lifecycle.resend_lost(session, lost_before=utcnow() - timedelta(seconds=1)) == []
        claimed = lifecycle.claim(session, document)
        assert lifecycle.resend_lost(session, lost_before=utcnow() + timedelta(seconds=1)) == []    # in work
        lifecycle.fail(session, claimed, "boom")
        assert lifecycle.requeue(session, document).heartbeat_at is not None                     # sent again now
