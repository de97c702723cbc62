"""Server-side admin sessions: a row per login, deleted at logout, checked on every admin request.

The browser's cookie names a row (and is signed, so garbage cookies cost no query). Deleting the row
logs that browser out everywhere at once; a copied cookie is worth nothing after logout.

Example::

    sid = open_session(session=session, lifetime_seconds=7 * 24 * 3600)
    session_alive(session=session, session_id=sid)    # True
    close_session(session=session, session_id=sid)
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Field, Session, SQLModel

from store.clock import as_utc, utcnow


class AdminSession(SQLModel, table=True):
    """A logged-in admin browser session. The cookie holds its id (signed); logging out deletes the row,
    so a copied cookie stops working at once instead of staying valid until it expires."""

    __tablename__ = "admin_session"

    id: str = Field(primary_key=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime = Field(index=True)


def open_session(session: Session, *, lifetime_seconds: float) -> str:
    """Store a new session and return its id; expired sessions are pruned on the way."""
    now = utcnow()
    session.exec(delete(AdminSession).where(AdminSession.expires_at < now))
    row = AdminSession(id=secrets.token_urlsafe(32), created_at=now, expires_at=now + timedelta(seconds=lifetime_seconds))
    session.add(row)
    session.flush()
    return row.id


def session_alive(session: Session, *, session_id: str) -> bool:
    row = session.get(AdminSession, session_id)
    return row is not None and as_utc(row.expires_at) > utcnow()


def close_session(session: Session, *, session_id: str) -> None:
    session.exec(delete(AdminSession).where(AdminSession.id == session_id))
