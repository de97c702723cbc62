"""API keys: created once, stored only as a SHA-256 hash, scoped to one app or all, revocable.

A key looks like ``sy_<8-char prefix>_<secret>``; the prefix identifies it in lists without revealing
it. Keys carry 256 bits of randomness, so a plain SHA-256 (no slow KDF) is the right hash.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy import update
from sqlmodel import Session, col, select

from apps.models import ApiKey
from stackyard.errors import NotFound, StackyardError
from store.clock import as_utc, utcnow
from store.db import race_safe

LAST_USED_RESOLUTION = 60.0


class Unauthorized(StackyardError):
    status = 401


class Forbidden(StackyardError):
    status = 403


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(session: Session, *, name: str = "", app_slug: str | None = None, rate_per_minute: int = 60) -> tuple[ApiKey, str]:
    """Create a key; returns the row and the key itself, which is never available again."""
    prefix = secrets.token_hex(4)
    key = f"sy_{prefix}_{secrets.token_urlsafe(32)}"
    row = ApiKey(name=name, prefix=f"sy_{prefix}", key_hash=_hash(key), app_slug=app_slug, rate_per_minute=rate_per_minute)
    session.add(row)
    session.flush()
    return row, key


def list_keys(session: Session) -> list[ApiKey]:
    return list(session.exec(select(ApiKey).order_by(col(ApiKey.created_at))))


def revoke_key(session: Session, *, key_id: str) -> ApiKey:
    """Revoke a key (by id or prefix); revoking it again keeps the first revocation time."""

    def revoke() -> ApiKey:
        row = session.get(ApiKey, key_id) or session.exec(select(ApiKey).where(ApiKey.prefix == key_id)).first()
        if row is None:
            raise NotFound(f"No API key '{key_id}'; list them with `stackyard keys list`.")
        # Conditional, so simultaneous revokes agree on one time instead of each writing its own.
        session.execute(update(ApiKey).where(col(ApiKey.id) == row.id, col(ApiKey.revoked_at).is_(None))
                        .values(revoked_at=utcnow()))
        session.refresh(row)
        return row

    row = race_safe(session, revoke, what=f"Revoking API key '{key_id}'")
    return row


def authenticate(session: Session, *, authorization: str | None) -> ApiKey:
    """The key row for an ``Authorization: Bearer <key>`` header, or Unauthorized."""
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized("Missing API key: send 'Authorization: Bearer <key>' (create one with `stackyard keys create`).")
    row = session.exec(select(ApiKey).where(ApiKey.key_hash == _hash(authorization[7:].strip()))).first()
    if row is None:
        raise Unauthorized("Invalid API key; check it or create a new one with `stackyard keys create`.")
    if row.revoked_at is not None:
        raise Unauthorized(f"API key {row.prefix}… was revoked; create a new one.")
    now = utcnow()
    if row.last_used_at is None or (now - as_utc(row.last_used_at)).total_seconds() > LAST_USED_RESOLUTION:
        # Written at most once a minute per key: a write per request would cost more than the request.
        session.execute(update(ApiKey).where(col(ApiKey.id) == row.id).values(last_used_at=now))
    return row


def authorize(key: ApiKey, slug: str) -> None:
    if key.app_slug is not None and key.app_slug != slug:
        raise Forbidden(f"API key {key.prefix}… is scoped to app '{key.app_slug}' and cannot call '{slug}'.")
