"""Knowledge bases as stored: names taken once, each content once, also when two requests race."""

from __future__ import annotations

import threading

from knowledge import bases
from knowledge.documents import text_source
from knowledge.models import KbDocument
from stackyard.settings import get_settings
from store.db import session_scope


def test_two_requests_adding_the_same_content_at_once_store_it_once(database):
    with session_scope() as session:
        bases.create(session, get_settings(), name="handbook")
    start, results, errors = threading.Barrier(2), [], []

    def add(name: str) -> None:
        try:
            with session_scope() as session:
                base = bases.get(session, "handbook")
                start.wait(timeout=10)
                added = bases.add_documents(session, base, [text_source(name, "Thirty days of vacation.")])
                results.append((len(added.added), len(added.skipped)))
        except Exception as exc:  # noqa: BLE001 - the test reports it
            errors.append(exc)

    threads = [threading.Thread(target=add, args=(name,)) for name in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and sorted(results) == [(0, 1), (1, 0)]
    with session_scope() as session:
        assert len(session.query(KbDocument).all()) == 1
