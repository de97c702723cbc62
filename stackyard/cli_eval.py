"""``stackyard eval``: import a test set, run an evaluation on the workers and wait for its scores, compare two;
``--gate`` makes ``run`` a check for CI.

Exit codes of ``eval run``: 0 scored (and, with ``--gate``, passed); 1 the gate failed; 2 it could not run (a bad
argument, no such workflow or test set, no worker, timed out, or not scorable). Example::

    stackyard eval import cases.csv --set faq
    stackyard eval run support-bot@3 --set faq --gate --threshold recall=0.8 --error-budget 0.05
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stackyard.errors import StackyardError

PASSED, GATE_FAILED, COULD_NOT_RUN = 0, 1, 2


def _pairs(values: list[str], flag: str) -> dict[str, float]:
    found = {}
    for value in values or []:
        metric, _, number = value.partition("=")
        try:
            found[metric.strip()] = float(number)
        except ValueError:
            raise StackyardError(f"{flag} {value!r}: write METRIC=NUMBER, e.g. {flag} recall=0.8") from None
    return found


def _gate(session: object, args: argparse.Namespace, settings: object) -> object | None:
    """The gate ``--gate`` checks: the thresholds given here, else that of an app publishing the workflow on
    this test set (its absolute checks: "no worse than live" is checked when publishing)."""
    from sqlmodel import select

    from apps.models import Publication
    from evaluations.gate import Gate
    from workflows import crud

    thresholds = _pairs(args.threshold, "--threshold")
    if thresholds or args.error_budget is not None:
        return Gate(test_set=args.set, revision=args.revision, settings=settings, thresholds=thresholds,
                    error_budget=args.error_budget or 0.0)
    workflow = crud.get_workflow(session=session, ref=args.ref.partition("@")[0])
    for publication in session.exec(select(Publication).where(Publication.workflow_id == workflow.id)).all():
        if publication.gate and publication.gate.get("test_set") == args.set:
            return Gate(**publication.gate)
    raise StackyardError(f"--gate: no app publishing this workflow has a gate on test set '{args.set}'; give "
                         "--threshold METRIC=MIN (and --error-budget SHARE) here.")


def cmd_eval(args: argparse.Namespace) -> int:
    try:
        return _run(args)
    except StackyardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return COULD_NOT_RUN
    except ValueError as exc:       # a gate or settings refused by their checks
        print(f"error: {exc}", file=sys.stderr)
        return COULD_NOT_RUN


def _run(args: argparse.Namespace) -> int:
    from evaluations import compare, lifecycle, testsets
    from evaluations.gate import verdict
    from evaluations.importing import MAX_IMPORT_BYTES, parse
    from evaluations.metrics import MetricSettings
    from evaluations.models import EvalState
    from store.db import migrate, session_scope
    from worker.batch import dispatch

    migrate()
    if args.action == "import":
        path = Path(args.ref)
        kind = "jsonl" if path.suffix.lower() in (".jsonl", ".ndjson") else "csv"
        if not path.is_file() or path.stat().st_size > MAX_IMPORT_BYTES:
            raise StackyardError(f"{path}: give a CSV or JSONL file of at most {MAX_IMPORT_BYTES:,} bytes.")
        try:
            cases = parse(path.read_text(encoding="utf-8"), kind)
        except UnicodeDecodeError:
            raise StackyardError(f"{path} is not UTF-8 text; save it as UTF-8.") from None
        with session_scope() as session:
            made = testsets.add(session, args.set, cases, replace=args.replace, note=f"imported {path.name}")
            print(f"test set '{args.set}' revision {made.number}: {made.case_count} case(s)")
        return PASSED
    if args.action == "compare":
        with session_scope() as session:
            report = compare.compare(session, lifecycle.get(session, args.ref), lifecycle.get(session, args.set))
        print(json.dumps(report, indent=2, default=str))
        return PASSED
    workflow, _, number = args.ref.partition("@")
    settings = MetricSettings(k=args.k)
    with session_scope() as session:
        gate = _gate(session, args, settings) if args.gate else None
        evaluation, reused = lifecycle.start(session, workflow=workflow, version=int(number) if number else None,
                                             test_set=args.set, revision=args.revision,
                                             settings=gate.settings if gate else settings)
    if not reused and evaluation.job_id:
        dispatch(evaluation.job_id)
    print(f"evaluation {evaluation.id}{' (reused)' if reused else ''}: version {evaluation.version} on "
          f"'{args.set}' revision {evaluation.revision}", file=sys.stderr)
    deadline = time.monotonic() + args.wait
    while True:
        with session_scope() as session:
            evaluation = lifecycle.get(session, evaluation.id)
        if evaluation.state in lifecycle.TERMINAL:
            break
        if time.monotonic() > deadline:
            print(f"error: not scored after {args.wait:g} s (is a worker running? `stackyard worker`)",
                  file=sys.stderr)
            return COULD_NOT_RUN
        time.sleep(1.0)
    if evaluation.state != EvalState.DONE:
        print(f"error: evaluation {evaluation.id} is {evaluation.state.value}: {evaluation.error}", file=sys.stderr)
        return COULD_NOT_RUN
    print(json.dumps(evaluation.summary, indent=2, default=str))
    if gate is None:
        return PASSED
    with session_scope() as session:
        report = verdict(session, gate, evaluation, None)
    for check in report["checks"]:
        print(f"{'pass' if check['passed'] else 'FAIL'}  {check['check']}: {check['value']}", file=sys.stderr)
    return PASSED if report["passed"] else GATE_FAILED


def add_parser(add: Callable[[str, Callable[[argparse.Namespace], int], str], argparse.ArgumentParser]) -> None:
    p = add("eval", cmd_eval, "evaluations: import a test set, run one (and gate on it), compare two")
    p.add_argument("action", choices=["run", "import", "compare"])
    p.add_argument("ref", metavar="WORKFLOW[@VERSION] | FILE | EVALUATION_A",
                   help="run: the version; import: a CSV or JSONL file; compare: the baseline evaluation")
    p.add_argument("--set", required=True, help="run, import: the test set; compare: the other evaluation")
    p.add_argument("--revision", type=int, default=None, help="run: the test set's revision (default: newest)")
    p.add_argument("--replace", action="store_true", help="import: the new revision holds only the file's cases")
    p.add_argument("--k", type=int, default=5, help="run: retrieval metrics read the first k documents")
    p.add_argument("--gate", action="store_true", help="run: exit 1 when the gate fails (see --threshold)")
    p.add_argument("--threshold", action="append", metavar="METRIC=MIN", help="run --gate: lowest mean that passes")
    p.add_argument("--error-budget", type=float, default=None, dest="error_budget",
                   help="run --gate: share of cases that may fail (default 0)")
    p.add_argument("--wait", type=float, default=1800.0, help="run: seconds to wait for the scores")
