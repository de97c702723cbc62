"""Per-node trace: a Haystack tracer that records each component run as a NodeRun row.

Haystack opens one span per component run (name, type, inputs, outputs); this tracer turns the
span's start and end into a row, so node status is visible while the run is still going. It also
checks for a cancel between nodes: raising :class:`RunCancelled` at a node's start stops the pipeline.

Enable once per process with :func:`install`; bind a run with ``with recording(run_id, ...)``.
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from haystack import tracing
from haystack.tracing import Span, Tracer

from workflows.models import NodeRun, utcnow

PREVIEW_CHARS = 500       # per string in an output preview
PREVIEW_ITEMS = 5         # per list in an output preview


class RunCancelled(Exception):
    """Raised inside the pipeline when the run's cancel flag is set."""


@dataclass
class Recording:
    run_id: str
    attempt: int
    session_factory: Callable[[], Any]
    cancelled: threading.Event = field(default_factory=threading.Event)
    node_seconds: dict[str, float] = field(default_factory=dict)


_current: contextvars.ContextVar[Recording | None] = contextvars.ContextVar("stackyard_recording", default=None)


def preview(value: Any) -> Any:
    """A bounded, JSON-ready view of a node's outputs."""
    from workflows.execute import jsonable

    def trim(item: Any) -> Any:
        if isinstance(item, list):
            head = [trim(x) for x in item[:PREVIEW_ITEMS]]
            return head + ([f"… {len(item) - PREVIEW_ITEMS} more"] if len(item) > PREVIEW_ITEMS else [])
        if isinstance(item, dict):
            return {k: trim(v) for k, v in item.items() if k != "embedding"}
        return item

    return trim(jsonable(value, max_text=PREVIEW_CHARS))


class _NodeSpan(Span):
    def __init__(self) -> None:
        self.tags: dict[str, Any] = {}

    def set_tag(self, key: str, value: Any) -> None:
        self.tags[key] = value

    def set_content_tag(self, key: str, value: Any) -> None:
        # Always keep outputs: the preview is part of the product, not optional telemetry.
        self.tags[key] = value


class RunTracer(Tracer):
    """Writes NodeRun rows for component spans of the run bound in this context; ignores the rest."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def trace(self, operation_name: str, tags: dict[str, Any] | None = None, parent_span: Span | None = None) -> Iterator[Span]:
        span = _NodeSpan()
        span.set_tags(tags or {})
        recording = _current.get()
        if recording is None or operation_name != "haystack.component.run":
            yield span
            return
        if recording.cancelled.is_set():
            raise RunCancelled("cancelled by request")
        node = span.tags.get("haystack.component.name", "?")
        with recording.session_factory() as session:
            row = NodeRun(run_id=recording.run_id, attempt=recording.attempt, node=node,
                          component_type=span.tags.get("haystack.component.fully_qualified_type", ""))
            session.add(row)
            session.commit()
            row_id = row.id
        started = time.perf_counter()
        error: str | None = None
        try:
            yield span
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise
        finally:
            seconds = time.perf_counter() - started
            recording.node_seconds[node] = recording.node_seconds.get(node, 0.0) + seconds
            with recording.session_factory() as session:
                row = session.get(NodeRun, row_id)
                row.state = "failed" if error else "done"
                row.finished_at = utcnow()
                row.duration_ms = round(seconds * 1000, 3)
                row.error = error
                if "haystack.component.output" in span.tags:
                    row.output_preview = preview(span.tags["haystack.component.output"])
                session.add(row)
                session.commit()

    def current_span(self) -> Span | None:
        return None


_installed = False


def install() -> None:
    """Route Haystack's tracing through the run tracer (once per process)."""
    global _installed
    if not _installed:
        tracing.enable_tracing(RunTracer())
        tracing.tracer.is_content_tracing_enabled = True
        _installed = True


@contextlib.contextmanager
def recording(recording: Recording) -> Iterator[Recording]:
    install()
    token = _current.set(recording)
    try:
        yield recording
    finally:
        _current.reset(token)
