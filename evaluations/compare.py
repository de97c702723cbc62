"""Two evaluations on the same test-set revision, side by side, aligned by case id (never by position: a
revision's cases keep their keys, Haystack's comparative report aligns by position).

Per metric: each run's mean over the cases both scored, the delta, and a sign test on the cases that changed
(how likely a split at least this uneven is if neither version were better: a two-sided binomial p-value).
Cases that got worse come first, each with both answers and retrieved documents.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from evaluations.importing import BadTestSet
from evaluations.models import EvalResult, EvalState, Evaluation

MAX_CASES_SHOWN = 200
MAX_KEYS_LISTED = 1000       # of the worse cases and those in one run only


def sign_test(better: int, worse: int) -> float:
    """Two-sided exact sign test: the chance of a split at least as uneven as ``better`` vs ``worse`` when
    either is as likely (1.0 when nothing changed)."""
    n = better + worse
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(min(better, worse) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def results(session: Session, evaluation: Evaluation, *, limit: int | None = None) -> dict[str, EvalResult]:
    """The evaluation's results by case key, in the test set's order (the first ``limit``)."""
    query = select(EvalResult).where(EvalResult.evaluation_id == evaluation.id).order_by(col(EvalResult.position))
    return {r.case_key: r for r in session.exec(query.limit(limit) if limit else query).all()}


@dataclass(frozen=True)
class Scored:
    """What comparing needs of a case's result: not its answer and documents (100,000 cases of those would not
    fit in memory twice)."""

    succeeded: bool
    scores: dict[str, Any]


def scores(session: Session, evaluation: Evaluation) -> dict[str, Scored]:
    rows = session.exec(select(EvalResult.case_key, EvalResult.succeeded, EvalResult.scores).where(
        EvalResult.evaluation_id == evaluation.id).order_by(col(EvalResult.position))).all()
    return {key: Scored(succeeded, values or {}) for key, succeeded, values in rows}


def compare(session: Session, a: Evaluation, b: Evaluation) -> dict[str, Any]:
    """``b`` against ``a`` (the baseline): per-metric means, deltas and sign tests, and the cases that changed,
    the ones that got worse first."""
    for evaluation in (a, b):
        if evaluation.state != EvalState.DONE:
            raise BadTestSet(f"Evaluation '{evaluation.id}' is {evaluation.state.value}; compare finished ones.",
                             field="evaluation")
    if a.revision_id != b.revision_id:
        raise BadTestSet(f"These evaluations ran on different test-set revisions ({a.revision} and {b.revision}); "
                         "run both on the same one to compare them.", field="evaluation")
    first, second = scores(session, a), scores(session, b)
    keys = [key for key in first if key in second]
    metrics = [m for m in a.summary.get("metrics", {}) if m in b.summary.get("metrics", {})]
    notes = []
    if "sas" in metrics and a.summary.get("sas_model") != b.summary.get("sas_model"):
        metrics.remove("sas")
        notes.append(f"Semantic answer similarity left out: scored with {a.summary.get('sas_model')} and "
                     f"{b.summary.get('sas_model')}; scores of different models are not comparable.")
    table, changes = {}, {}
    for metric in metrics:
        pairs = [(key, first[key].scores.get(metric), second[key].scores.get(metric)) for key in keys]
        pairs = [(key, x, y) for key, x, y in pairs if x is not None and y is not None]
        better = sum(1 for _, x, y in pairs if y > x)
        worse = sum(1 for _, x, y in pairs if y < x)
        mean_a = sum(x for _, x, _ in pairs) / len(pairs) if pairs else None
        mean_b = sum(y for _, _, y in pairs) / len(pairs) if pairs else None
        table[metric] = {"a": mean_a, "b": mean_b, "delta": None if mean_a is None else mean_b - mean_a,
                         "n": len(pairs), "better": better, "worse": worse, "p_value": sign_test(better, worse)}
        for key, x, y in pairs:
            if y != x:
                changes.setdefault(key, {})[metric] = y - x
    for key in keys:                      # a case that ran in one and failed in the other changed too
        if first[key].succeeded != second[key].succeeded:
            changes.setdefault(key, {})["succeeded"] = int(second[key].succeeded) - int(first[key].succeeded)
    order = sorted(changes, key=lambda key: (min(changes[key].values()), key))
    shown = order[:MAX_CASES_SHOWN]
    sides = {evaluation.id: _details(session, evaluation, shown) for evaluation in (a, b)}
    worse = [k for k in order if min(changes[k].values()) < 0]
    return {"a": a.id, "b": b.id, "revision": a.revision, "metrics": table, "notes": notes,
            "only_in_a": [k for k in first if k not in second][:MAX_KEYS_LISTED],
            "only_in_b": [k for k in second if k not in first][:MAX_KEYS_LISTED],
            "worse": worse[:MAX_KEYS_LISTED], "worse_count": len(worse),
            "latency_ms": {"a": a.summary.get("latency_ms"), "b": b.summary.get("latency_ms")},
            "failure_rate": {"a": a.summary.get("failure_rate"), "b": b.summary.get("failure_rate")},
            "cases": [{"key": key, "change": changes[key], "a": _side(sides[a.id][key]), "b": _side(sides[b.id][key])}
                      for key in shown]}


def _details(session: Session, evaluation: Evaluation, keys: list[str]) -> dict[str, EvalResult]:
    """The full results of the cases shown (at most ``MAX_CASES_SHOWN``)."""
    return {r.case_key: r for r in session.exec(select(EvalResult).where(
        EvalResult.evaluation_id == evaluation.id, col(EvalResult.case_key).in_(keys))).all()} if keys else {}


def _side(result: EvalResult) -> dict[str, Any]:
    return {"succeeded": result.succeeded, "answer": result.answer, "documents": result.documents,
            "scores": result.scores, "errors": result.errors, "error": result.error}
