"""The publishing gate applied: before a gated app serves a version, that version's evaluation on the gate's test
set must pass the gate (``evaluations.gate``), against the live version's evaluation on the same cases.

A finished evaluation with the same version, test-set revision, metric settings and knowledge-base generations
is reused; otherwise one starts (the live version's too, when a check compares with it) and the switch waits:
publish again once it is done. A failed gate refuses the switch with its report, unless an admin overrides it
with a reason, which is kept with the verdict.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from apps.models import Publication
from evaluations import lifecycle as evaluations
from evaluations.gate import Gate, verdict
from evaluations.models import EvalState, Evaluation
from stackyard.errors import StackyardError
from workflows import crud


class GateFailed(StackyardError):
    status = 409
    field = "gate"

    def __init__(self, message: str = "", report: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.report = report or {}


@dataclass
class GatePending:
    """The switch waits for these evaluations (new ones have jobs to dispatch after commit)."""

    evaluations: list[Evaluation]
    jobs: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        running = ", ".join(f"{e.id} (version {e.version}, {e.state.value})" for e in self.evaluations)
        return (f"The gate runs its test set first: evaluation {running}. Publish again when it is done "
                "(GET /api/v1/evaluations/{id}); a finished evaluation is reused.")


MIN_REASON = 3


def reason(text: str | None) -> str | None:
    """An override's reason as given, or None when it says nothing (blank, or a character or two)."""
    text = (text or "").strip()
    return text if len(text) >= MIN_REASON else None


def gate_to_apply(live: Publication | None, given: Gate | None, override: str | None) -> Gate | None:
    """The gate this publish must pass: the app's own, or the one given. Changing (or dropping in favour of a
    weaker) gate of an app that has one is itself an override and needs a reason.

    :raises GateFailed: the app has a gate, another is given, and no reason is.
    """
    current = Gate(**live.gate) if live is not None and live.gate else None
    if given is None or current is None or given == current:
        return given or current
    if override is None:
        raise GateFailed(f"App '{live.slug}' already has a gate (test set '{current.test_set}'); replacing it is an "
                         "override: give override_reason, which is kept with the verdict.")
    return given


def _evaluation(session: Session, gate: Gate, workflow: str, version: int, pending: GatePending) -> Evaluation:
    found, reused = evaluations.start(session, workflow=workflow, version=version, test_set=gate.test_set,
                                      revision=gate.revision, settings=gate.settings)
    if not reused and found.job_id:
        pending.jobs.append(found.job_id)
    if found.state != EvalState.DONE:
        pending.evaluations.append(found)
    return found


def judge(session: Session, *, gate: Gate, workflow: str, version: int, live: Publication | None,
          override: str | None = None) -> dict[str, Any] | GatePending:
    """The gate's verdict on ``version`` (a report to keep with the publication), or what it waits for.

    :raises GateFailed: the version does not pass and no ``override`` reason is given.
    """
    pending = GatePending(evaluations=[])
    candidate = _evaluation(session, gate, workflow, version, pending)
    current = None
    if gate.max_drop and live is not None:
        live_version = crud.get_version_by_id(session=session, version_id=live.version_id)
        if live_version.id != candidate.version_id:
            current = _evaluation(session, gate, live.workflow_id, live_version.number, pending)
    if pending.evaluations:
        return pending
    for evaluation in (candidate, current):
        if evaluation is not None and evaluation.state == EvalState.FAILED:
            raise GateFailed(f"Evaluation {evaluation.id} of version {evaluation.version} could not be scored "
                             f"({evaluation.error}); fix it and publish again.")
    report = verdict(session, gate, candidate, current)
    if not report["passed"]:
        if not override:
            failed = "; ".join(f"{c['check']}: {_shown(c['value'])}" for c in report["checks"] if not c["passed"])
            raise GateFailed(f"Version {version} did not pass the gate on test set '{gate.test_set}' ({failed}). "
                             "It stays unpublished; improve it, or override with a reason.", report=report)
        report["override"] = override
    return report


def _shown(value: Any) -> str:
    return "nothing scored" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)
