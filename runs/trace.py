"""Per-node trace: a Haystack tracer that records each component run as a NodeRun row.

Haystack opens one span per component run (name, type, inputs, outputs); this tracer turns the
span's start and end into a row, so node status is visible while the run is still going. It also
checks for a cancel between nodes: raising :class:`RunCancelled` at a node's start stops the pipeline.

Enable once per process with :func:`install`; bind a run with ``with recording(run_id, ...)``. Rows an
attempt left ``running`` when its worker died are marked ``interrupted`` by :func:`interrupt`, which the
run policy (``runs.lifecycle``) calls when the run moves on without that attempt.
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

from runs.models import NodeRun, NodeState
from stackyard.redact import redact
from store.clock import utcnow
from store.transitions import compare_and_set_rows

PREVIEW_CHARS = 500       # per string in an output preview
PREVIEW_ITEMS = 5         # per list in an output preview
FULL_OUTPUT_CHARS = 1_000_000   # of an agent's tool result kept whole for download
PREVIEW_KEYS = 50         # per mapping in an output preview
ERROR_CHARS = 4_000       # of a row's error (a tool's error quotes its arguments)


class RunCancelled(Exception):
    """Raised inside the pipeline when the run's cancel flag is set."""


@dataclass
class Recording:
    """The trace of one run attempt, buffered in memory and written by :meth:`flush`.

    The worker flushes every ~100 ms while the run goes (so node status shows up live) and once more
    just before it writes the outcome, so whoever sees the run finished sees its whole trace. Flushes run
    in autocommit: an id handed back by an INSERT is a row that exists.
    """

    run_id: str
    attempt: int
    cancelled: threading.Event = field(default_factory=threading.Event)
    node_seconds: dict[str, float] = field(default_factory=dict)
    notices: dict[str, str] = field(default_factory=dict)   # node → what its trace says whatever it outputs
    _rows: list[dict[str, Any]] = field(default_factory=list)
    _ids: list[int | None] = field(default_factory=list)
    _dirty: set[int] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def started(self, node: str, component_type: str) -> int:
        with self._lock:
            self._rows.append({"run_id": self.run_id, "attempt": self.attempt, "node": node,
                               "state": NodeState.RUNNING, "component_type": component_type,
                               "started_at": utcnow()})
            self._ids.append(None)
            self._dirty.add(len(self._rows) - 1)
            return len(self._rows) - 1

    def ended(self, index: int, **values: Any) -> None:
        with self._lock:
            self._rows[index].update(values, finished_at=utcnow())
            self._dirty.add(index)

    def failed_to_start(self, node: str, component_type: str, error: str) -> None:
        """Record that ``node`` failed before the pipeline ran (its model would not load): the run's trace then
        blames that node, and the nodes without a row read as not reached."""
        self.ended(self.started(node, component_type), state=NodeState.FAILED, duration_ms=0.0, error=error)

    def flush(self, session: Any) -> None:
        """Write rows changed since the last flush (no commit: the caller's session decides). Rows it could
        not write stay due for the next flush."""
        with self._lock:
            dirty = sorted(self._dirty)
            self._dirty.clear()
        try:
            self._write(session, dirty)
        except BaseException:
            with self._lock:
                self._dirty.update(dirty)
            raise

    def _write(self, session: Any, dirty: list[int]) -> None:
        from sqlalchemy import insert

        with self._lock:
            work = [(index, self._ids[index], dict(self._rows[index])) for index in dirty]
        new = [(index, values) for index, row_id, values in work if row_id is None]
        if new:  # one multi-row INSERT for every new row, ids back in the rows' order
            keys = set().union(*(values for _, values in new))  # ended rows carry more fields than running ones
            rows = [{key: values.get(key) for key in keys} for _, values in new]
            table = NodeRun.__table__  # Core, not the ORM's bulk path: cheaper, and this runs for every run
            ids = session.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars().all()
            with self._lock:
                for (index, _), new_id in zip(new, ids, strict=True):
                    self._ids[index] = new_id
        for _, row_id, values in work:
            if row_id is not None:  # a node that ended: unless the run moved on without this attempt (interrupted)
                ended = values.pop("state")
                compare_and_set_rows(session, NodeRun, ended, {NodeState.RUNNING}, NodeRun.id == row_id, **values)


def interrupt(session: Any, run_id: str, *, through_attempt: int, reason: str) -> int:
    """Mark the rows of attempts up to ``through_attempt`` still ``running`` as ``interrupted``: their worker
    stopped mid-node (killed, or its lease expired), so nothing will ever end them. ``reason`` becomes their
    error. No commit: the caller's session decides. Returns how many rows changed."""
    stuck = (NodeRun.run_id == run_id, NodeRun.attempt <= through_attempt)
    return len(compare_and_set_rows(session, NodeRun, NodeState.INTERRUPTED, {NodeState.RUNNING}, *stuck, error=reason))


_current: contextvars.ContextVar[Recording | None] = contextvars.ContextVar("stackyard_recording", default=None)


def preview(value: Any) -> Any:
    """A bounded, JSON-ready view of a node's outputs."""
    from workflows.execute import jsonable

    def trim(item: Any) -> Any:
        if isinstance(item, list):
            head = [trim(x) for x in item[:PREVIEW_ITEMS]]
            return head + ([f"… {len(item) - PREVIEW_ITEMS} more"] if len(item) > PREVIEW_ITEMS else [])
        if isinstance(item, dict):
            kept = {k: trim(v) for k, v in list(item.items())[:PREVIEW_KEYS] if k != "embedding"}
            return kept | ({"…": f"{len(item) - PREVIEW_KEYS} more"} if len(item) > PREVIEW_KEYS else {})
        return item

    return trim(jsonable(value, max_text=PREVIEW_CHARS))


def full_output(value: Any) -> dict[str, Any]:
    """A tool result as JSON text for download, secrets masked: ``output_full`` (past ``FULL_OUTPUT_CHARS``, a JSON
    object holding its start as text and saying where it was cut) and the whole text's length ``output_chars``;
    nothing for no result."""
    import json

    from workflows.execute import jsonable

    if value is None:
        return {}
    text = redact(json.dumps(jsonable(value), ensure_ascii=False, default=str))   # masked whole, then cut
    whole = len(text)
    if whole > FULL_OUTPUT_CHARS:              # still JSON: the start of the result as text, and how long it was
        text = json.dumps({"cut": f"{whole:,} characters in all; the first {FULL_OUTPUT_CHARS:,} are kept",
                           "chars": whole, "text": text[:FULL_OUTPUT_CHARS]}, ensure_ascii=False)
    return {"output_full": text, "output_chars": whole}


def notice_of(node: str, component_type: str, output: Any) -> str | None:
    """What a node that worked should still tell its user: a retriever that found no documents (an empty or
    misnamed collection), after which a generator answers without context."""
    if (str(component_type).endswith("Retriever") and isinstance(output, dict)
            and isinstance(output.get("documents"), list) and not output["documents"]):
        return (f"'{node}' retrieved no documents: its collection is empty or nothing matched, so what follows "
                "has no context. Run an ingest workflow into that collection first, or check its name.")
    return None


class _NodeSpan(Span):
    def __init__(self) -> None:
        self.tags: dict[str, Any] = {}

    def set_tag(self, key: str, value: Any) -> None:
        self.tags[key] = value

    def set_content_tag(self, key: str, value: Any) -> None:
        # Always keep outputs: the preview is part of the product, not optional telemetry.
        self.tags[key] = value


# An agent's steps, recorded as rows of their own under its node: "agent · step 2 · tool search".
AGENT_STEP, AGENT_MODEL, AGENT_TOOL = "haystack.agent.step", "haystack.agent.step.llm", "haystack.agent.step.tool"
_node: contextvars.ContextVar[str | None] = contextvars.ContextVar("stackyard_trace_node", default=None)
_step: contextvars.ContextVar[int] = contextvars.ContextVar("stackyard_trace_step", default=0)


def step_row_name(node: str, step: int, tool: str | None = None) -> str:
    """The trace row of an agent's model call (``tool`` None) or tool call in its ``step`` (from 1)."""
    return f"{node} · step {step} · " + (f"tool {tool}" if tool else "model")


@contextlib.contextmanager
def _row(recording: Recording, name: str, type_: str,
         ending: Callable[[str | None, float], dict[str, Any]]) -> Iterator[None]:
    """One trace row for the span around it: running while it runs, then done or failed with its duration and
    what ``ending(error, seconds)`` adds (which may overrule the state and error)."""
    index = recording.started(name, type_)
    started = time.perf_counter()
    error: str | None = None
    try:
        yield
    except BaseException as exc:
        error = redact(f"{type(exc).__name__}: {exc}")
        raise
    finally:
        seconds = time.perf_counter() - started
        values = {"state": NodeState.FAILED if error else NodeState.DONE, "error": error,
                  "duration_ms": round(seconds * 1000, 3), **ending(error, seconds)}
        if values["error"] and len(values["error"]) > ERROR_CHARS:
            values["error"] = values["error"][:ERROR_CHARS] + f"… (+{len(values['error']) - ERROR_CHARS:,} characters)"
        recording.ended(index, **values)


class RunTracer(Tracer):
    """Writes NodeRun rows for component spans of the run bound in this context, and for the model and tool calls
    of each agent step (Haystack's agent spans); ignores the rest."""

    def __init__(self) -> None:
        self._local = threading.local()

    @contextlib.contextmanager
    def trace(self, operation_name: str, tags: dict[str, Any] | None = None, parent_span: Span | None = None) -> Iterator[Span]:
        span = _NodeSpan()
        span.set_tags(tags or {})
        recording = _current.get()
        if recording is not None and operation_name == AGENT_STEP:
            token = _step.set(int(span.tags.get(AGENT_STEP) or 0) + 1)
            try:
                yield span
            finally:
                _step.reset(token)
            return
        if recording is not None and operation_name in (AGENT_MODEL, AGENT_TOOL) and _node.get() is not None:
            with self._agent_call(recording, span, operation_name):
                yield span
            return
        if recording is None or operation_name != "haystack.component.run":
            yield span
            return
        if recording.cancelled.is_set():
            raise RunCancelled("cancelled by request")
        node = span.tags.get("haystack.component.name", "?")
        type_ = span.tags.get("haystack.component.fully_qualified_type", "")
        if _node.get() is not None:       # a component an agent's tool runs: its tool row stands for it
            yield span
            return
        node_token = _node.set(node)
        try:
            with self._component(recording, span, node, type_):
                yield span
        finally:
            _node.reset(node_token)

    @contextlib.contextmanager
    def _agent_call(self, recording: Recording, span: _NodeSpan, operation_name: str) -> Iterator[None]:
        tool = span.tags.get("haystack.tool.name") if operation_name == AGENT_TOOL else None
        if tool and recording.cancelled.is_set():
            raise RunCancelled("cancelled by request")

        def ending(error: str | None, seconds: float) -> dict[str, Any]:
            if not tool:
                return {"output_preview": preview(span.tags.get("haystack.agent.step.llm.output"))}
            result = span.tags.get("haystack.agent.step.tool.output")
            if span.tags.get("haystack.tool.error"):     # shown to the model, which goes on: the row says it failed
                told = result.get("error") if isinstance(result, dict) else result
                error, result = error or redact(str(told)), None
            arguments = span.tags.get("haystack.agent.step.tool.input")
            return {"state": NodeState.FAILED if error else NodeState.DONE, "error": error,
                    "output_preview": preview({"arguments": arguments, "result": result}), **full_output(result)}

        with _row(recording, step_row_name(_node.get() or "?", _step.get(), tool),
                  "tool call" if tool else "model call", ending):
            yield

    @contextlib.contextmanager
    def _component(self, recording: Recording, span: _NodeSpan, node: str, type_: str) -> Iterator[None]:
        def ending(error: str | None, seconds: float) -> dict[str, Any]:
            recording.node_seconds[node] = recording.node_seconds.get(node, 0.0) + seconds
            output = span.tags.get("haystack.component.output")
            return {"notice": recording.notices.get(node) or notice_of(node, type_, output),
                    "output_preview": preview(output) if output is not None else None}

        with _row(recording, node, type_, ending):
            yield

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
