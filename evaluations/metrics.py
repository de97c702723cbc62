"""Scoring cases with Haystack's evaluator components: which settings, and how each case's run is read.

Retrieval metrics (recall single/multi hit, MRR, MAP, NDCG) are Haystack's ``Document*Evaluator`` over the first
``k`` documents the run returned (Haystack's metrics have no @k cut: the list is cut first). A retrieved
document counts as an expected source by ``match``:

* ``snippet`` (default): it is from the expected document and holds the gold snippet (or the snippet holds it,
  or they share most words); an expected source without a snippet matches by document;
* ``document``: it is from the expected document (any of its chunks);
* ``chunk``: it is the expected chunk (sources saved with a ``chunk_id``).

Each case's expected sources get labels, each retrieved document the label of the source it matches, and the
evaluators compare labels (``document_comparison_field="meta.<label>"``). Exact match is Haystack's, on answers
normalised first (case, punctuation, spaces: it compares strings as they are). Semantic answer similarity is
Haystack's ``SASEvaluator`` with a local model, recorded with the scores (runs scored with different models are
not compared). A case whose run failed scores None on every metric and counts as a failure.
"""

from __future__ import annotations

import math
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from nodes.catalog import MINILM

RETRIEVAL = ("recall", "recall_multi", "mrr", "map", "ndcg")
ANSWER = ("exact_match", "sas")
METRICS = (*RETRIEVAL, *ANSWER)
LABEL = "eval_source"
MAX_DOCUMENTS = 100


class MetricSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[Literal["recall", "recall_multi", "mrr", "map", "ndcg", "exact_match", "sas"]] = Field(
        default_factory=lambda: list(METRICS), min_length=1, description="What to score (latency and the failure "
                                                                         "rate always)")
    k: int = Field(default=5, ge=1, le=MAX_DOCUMENTS, strict=True, description="Retrieval metrics read the first k "
                                                                                "documents")
    match: Literal["snippet", "document", "chunk"] = Field(default="snippet", description="When a retrieved "
                                                           "document counts as an expected source")
    answer_output: str | None = Field(default=None, max_length=200, description="The output holding the answer "
                                                                                  "(default: found)")
    documents_output: str | None = Field(default=None, max_length=200, description="The output holding the "
                                                                                     "retrieved documents (default: "
                                                                                     "found)")
    sas_model: str = Field(default=MINILM, max_length=500, description="The model semantic answer similarity "
                                                                       "scores with")


@dataclass
class CaseRun:
    """One case as its run answered it."""

    key: str
    succeeded: bool
    answer: str | None = None
    documents: list[dict[str, Any]] = field(default_factory=list)
    expected_answer: str | None = None
    expected_sources: list[dict[str, Any]] = field(default_factory=list)
    scores: dict[str, float | None] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def read_outputs(outputs: dict[str, Any] | None, settings: MetricSettings) -> tuple[str | None, list[dict]]:
    """The answer and the retrieved documents in a run's outputs: the outputs the settings name, or the first
    that looks like each (a string or a reply; a list of documents)."""
    outputs = outputs or {}
    answer = _answer(outputs.get(settings.answer_output)) if settings.answer_output else next(
        (text for value in outputs.values() if (text := _answer(value)) is not None), None)
    documents = outputs.get(settings.documents_output) if settings.documents_output else next(
        (value for value in outputs.values() if _documents(value)), [])
    return answer, [d for d in (documents or []) if isinstance(d, dict)][:MAX_DOCUMENTS]


def _answer(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and value:
        first = value[0]
        if isinstance(first, str):
            return first
        if isinstance(first, dict) and isinstance(first.get("text"), str) and "role" in first:
            return first["text"]
    return None


def _documents(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(d, dict) and "content" in d and "id" in d
                                                           for d in value)


def normalise(text: str | None) -> str:
    """An answer as exact match compares it: lower case, no punctuation, single spaces."""
    text = (text or "").lower().translate(str.maketrans("", "", string.punctuation))
    return re.sub(r"\s+", " ", text).strip()


def _words(text: str) -> set[str]:
    return set(normalise(text).split())


def snippet_matches(snippet: str, content: str) -> bool:
    """Whether a chunk's ``content`` holds the gold ``snippet`` (or is held by it, or shares most of its
    words): labels cut under other chunking still find their text."""
    a, b = normalise(snippet), normalise(content)
    if not a or not b:
        return False
    if a in b or b in a:
        return True
    shorter = min(_words(snippet), _words(content), key=len)
    return len(_words(snippet) & _words(content)) >= 0.5 * max(len(shorter), 1)


def _labels(case: CaseRun, match: str, k: int) -> tuple[list[Any], list[Any]]:
    """Haystack documents for the case's expected sources and its first ``k`` retrieved documents, labelled
    so that a retrieved document carries the label of the source it matches."""
    from haystack import Document

    truth = [Document(content=f"source {i}", meta={LABEL: f"s{i}"}) for i in range(len(case.expected_sources))]
    found = []
    for rank, document in enumerate(case.documents[:k]):
        meta = document.get("meta") or {}
        label = None
        for i, source in enumerate(case.expected_sources):
            if match == "chunk":
                hit = source.get("chunk_id") and document.get("id") == source["chunk_id"]
            else:
                same = meta.get("kb_document_id") == source.get("document_id")
                hit = same and (match == "document" or not source.get("snippet")
                                or snippet_matches(source["snippet"], document.get("content") or ""))
            if hit:
                label = f"s{i}"
                break
        found.append(Document(content=f"retrieved {rank}", meta={LABEL: label} if label else {}))
    return truth, found


def score_retrieval(cases: list[CaseRun], settings: MetricSettings) -> None:
    """Each wanted retrieval metric for the cases that ran and have expected sources, into ``case.scores``."""
    from haystack.components.evaluators import (
        DocumentMAPEvaluator,
        DocumentMRREvaluator,
        DocumentNDCGEvaluator,
        DocumentRecallEvaluator,
    )

    wanted = [m for m in RETRIEVAL if m in settings.metrics]
    scored = [c for c in cases if c.succeeded and c.expected_sources]
    if not wanted or not scored:
        return
    pairs = [_labels(case, settings.match, settings.k) for case in scored]
    truth, found = [t for t, _ in pairs], [f for _, f in pairs]
    field_name = f"meta.{LABEL}"
    evaluators = {"recall": DocumentRecallEvaluator(mode="single_hit", document_comparison_field=field_name),
                  "recall_multi": DocumentRecallEvaluator(mode="multi_hit", document_comparison_field=field_name),
                  "mrr": DocumentMRREvaluator(document_comparison_field=field_name),
                  "map": DocumentMAPEvaluator(document_comparison_field=field_name),
                  "ndcg": DocumentNDCGEvaluator(document_comparison_field=field_name)}
    for metric in wanted:
        individual = evaluators[metric].run(ground_truth_documents=truth, retrieved_documents=found)
        for case, value in zip(scored, individual["individual_scores"], strict=True):
            case.scores[metric] = float(value)


def score_answers(cases: list[CaseRun], settings: MetricSettings, model_path: str | None) -> None:
    """Exact match and semantic answer similarity for the cases that ran and have an expected answer; a case
    with an expected answer whose run gave none scores 0 (it answered nothing)."""
    scored = [c for c in cases if c.succeeded and c.expected_answer]
    if not scored:
        return
    if "exact_match" in settings.metrics:
        from haystack.components.evaluators import AnswerExactMatchEvaluator

        result = AnswerExactMatchEvaluator().run(ground_truth_answers=[normalise(c.expected_answer) for c in scored],
                                                 predicted_answers=[normalise(c.answer) for c in scored])
        for case, value in zip(scored, result["individual_scores"], strict=True):
            case.scores["exact_match"] = float(value)
    if "sas" in settings.metrics:
        if model_path is None:
            for case in scored:
                case.errors["sas"] = (f"the scoring model '{settings.sas_model}' is not on this machine; map it to a "
                                      "folder (STACKYARD_MODEL_PATHS) or pick another sas_model")
            return
        from haystack.components.evaluators import SASEvaluator

        evaluator = SASEvaluator(model=model_path)
        evaluator.warm_up()
        result = evaluator.run(ground_truth_answers=[c.expected_answer or "" for c in scored],
                               predicted_answers=[c.answer or "" for c in scored])
        for case, value in zip(scored, result["individual_scores"], strict=True):
            case.scores["sas"] = float(value)


def percentile(values: list[float], share: float) -> float | None:
    """The ``share`` percentile of ``values`` (nearest rank), None when there are none."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(share * len(ordered)) - 1))]


def summarise(cases: list[CaseRun], latencies: list[float], settings: MetricSettings) -> dict[str, Any]:
    """Each metric's mean over the cases it scored (``n``), the cases it could not score (``errors``), with
    failures counted: the failure rate, and latency p50/p95 of the runs that finished."""
    metrics = {}
    for metric in settings.metrics:
        values = [c.scores[metric] for c in cases if c.scores.get(metric) is not None]
        errors = sum(1 for c in cases if metric in c.errors)
        metrics[metric] = {"mean": sum(values) / len(values) if values else None, "n": len(values),
                           "errors": errors}
    failed = sum(1 for c in cases if not c.succeeded)
    return {"cases": len(cases), "failed": failed, "failure_rate": failed / len(cases) if cases else 0.0,
            "unknown_sources": [],
            "latency_ms": {"p50": percentile(latencies, 0.5), "p95": percentile(latencies, 0.95)},
            "metrics": metrics, "sas_model": settings.sas_model if "sas" in settings.metrics else None}
