"""Aggregate figures of batch jobs read from the database (``runs.stats`` holds the shared helpers)."""

from __future__ import annotations

from sqlmodel import Session, col

from jobs.models import JobItem
from runs.stats import Histogram, histograms


def item_durations(session: Session) -> dict[str, Histogram]:
    """Finished batch job items, by final state."""
    seconds = col(JobItem.duration_ms) / 1000.0
    return histograms(session, seconds, col(JobItem.state), col(JobItem.duration_ms).is_not(None))
