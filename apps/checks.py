"""The publish check: before a version goes live as a chat app, it answers one message on a real worker.

The message runs as an ordinary run of that version (models load, stores connect, the generator answers),
on the queue its nodes need. A version that cannot answer is refused with what failed and where, unless the
admin publishes it anyway (``force``): the app then carries the problem as its ``check_warning``, which its
chat page shows. Skipping the check (``check=False``) is allowed and leaves the same kind of warning.

Every transport (the API, ``/apps``, the CLI) publishes through :func:`publish_checked`.

Example::

    publication, check = publish_checked(session, ref="rag", slug="support", version=None, given={...})
    check.reply      # what the version answered to "Hello"
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlmodel import Session

from apps import chat, gating, publishing
from apps.gating import GatePending
from apps.models import Publication
from evaluations.gate import Gate
from runs import lifecycle as runs
from runs import workers
from runs.models import RunState
from stackyard.errors import StackyardError
from store.db import autocommit_scope
from worker.enqueue import enqueue_new

CHECK_SECONDS = 120.0  # a cold model load on a CPU worker fits; a hung server does not hold the admin forever
POLL_SECONDS = 0.05
DEFAULT_MESSAGE = "Hello"
SKIPPED = "Published without the publish check: nobody has seen this version answer."


class PublishCheckFailed(StackyardError):
    status = 422
    field = "check"


@dataclass(frozen=True)
class CheckResult:
    """How the version answered ``message``: its reply, or the problem (``ok`` False)."""

    ok: bool
    run_id: str | None
    reply: str = ""
    problem: str | None = None


def smoke(version_id: str, roles: dict[str, str | None], message: str = DEFAULT_MESSAGE, *,
          timeout: float = CHECK_SECONDS) -> CheckResult:
    """Run ``message`` through the version as its chat app would, on a worker, and wait for the reply."""
    probe = Publication(slug="check", workflow_id="", version_id=version_id, message_input=roles["message"],
                        history_input=roles["history"], reply_output=roles["reply"])
    with autocommit_scope() as session:
        run = runs.create_run(session=session, workflow_ref=None, inputs=chat.chat_inputs(probe, message),
                              version_id=version_id)
        if run.queue not in workers.live_queues(session):
            runs.request_cancel(session=session, run_id=run.id)
            return CheckResult(False, run.id, problem=(
                f"no worker serves the '{run.queue}' queue this version needs, so it cannot answer: start one "
                f"(stackyard worker --queues {run.queue})"))
    enqueue_new(run)
    deadline = time.monotonic() + timeout
    while (done := runs.read_run(run.id)).state not in runs.TERMINAL_STATES:
        if time.monotonic() > deadline:
            with autocommit_scope() as session:
                runs.request_cancel(session=session, run_id=run.id)
            return CheckResult(False, run.id, problem=f"it did not answer within {timeout:g} s (run {run.id}, cancelled)")
        time.sleep(POLL_SECONDS)
    if done.state != RunState.SUCCEEDED:
        return CheckResult(False, run.id, problem=f"the test message {done.state.value}: {done.error} (run {run.id})")
    reply = chat.reply_text(probe, done.outputs)
    if not reply.strip():
        return CheckResult(False, run.id, problem=f"its reply output '{roles['reply']}' came back empty (run {run.id})")
    return CheckResult(True, run.id, reply=reply)


def publish_checked(session: Session, *, ref: str, slug: str, version: int | None, given: dict[str, str | None],
                    check: bool = True, force: bool = False, message: str = DEFAULT_MESSAGE,
                    max_concurrency: int | None = None, gate: Gate | None = None,
                    override: str | None = None) -> tuple[Publication | GatePending, CheckResult | None]:
    """Pass the app's gate (``gate``, or the one it has), check the version answers ``message`` (unless ``check``
    is False), then publish it. While the gate's evaluations run, nothing changes: what it waits for is returned.

    :raises PublishCheckFailed: the version did not answer and ``force`` is False; nothing is published.
    :raises GateFailed: the version did not pass the gate and no ``override`` reason was given.
    """
    publishing.check_slug(slug)
    with autocommit_scope() as reading:  # no transaction stays open while the worker answers
        row, roles = publishing.resolve(reading, ref=ref, version=version, given=given)
        version_id, number, workflow_id = row.id, row.number, row.workflow_id
    live = session.get(Publication, slug)
    override = gating.reason(override)
    chosen = gating.gate_to_apply(live, gate, override)
    report = None
    if chosen is not None:
        outcome = gating.judge(session, gate=chosen, workflow=workflow_id, version=number, override=override,
                               live=live)
        if isinstance(outcome, GatePending):
            return outcome, None
        report = outcome
    result = smoke(version_id, roles, message) if check else None
    if result is not None and not result.ok and not force:
        raise PublishCheckFailed(f"Version {number} was not published: {result.problem}. Fix the workflow and save a "
                                 "new version, or publish anyway (force) and the app will show this warning.")
    warning = SKIPPED if result is None else None if result.ok else f"Published although its check failed: {result.problem}."
    publication = publishing.publish(session=session, ref=ref, slug=slug, version=number,
                                     max_concurrency=max_concurrency, check_warning=warning, **given)
    if chosen is not None:
        if gate is not None and live is not None and live.gate and Gate(**live.gate) != gate:
            report = {**(report or {}), "gate_replaced": override}     # who weakened or changed it, and why
        publication.gate, publication.gate_result = chosen.model_dump(), report
        session.add(publication)
        session.flush()
    return publication, result
