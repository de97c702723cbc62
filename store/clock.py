"""Timestamps as stored: always timezone-aware UTC."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(value: datetime) -> datetime:
    """A stored timestamp as aware UTC: SQLite hands naive ones back."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
