"""Scoring cases with Haystack's evaluator components: which settings, and how each case's run is read.

Retrieval metrics (recall single/multi hit, MRR, MAP, NDCG) are Haystack's ``Document*Evaluator`` over the first
``k`` documents the run returned (Haystack's metrics have no @k cut: the list is cut first). A retrieved
document counts as an expected source by ``match``:

* ``snippet`` (default): it is from the expected document and holds the gold snippet (or the snippet holds it,
  or they share most words); an expected source without a snippet matches by document;
* ``document``: it is from the expected document (any of its chunks);
* ``chunk``: it is the expected chunk (sources saved with a ``chunk_id``);
* ``meta.<key>``: it has the expected source's value of that metadata field (e.g. ``meta.file_name``).

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
import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from nodes.catalog import MINILM

RETRIEVAL = ("recall", "recall_multi", "mrr", "map", "ndcg")
ANSWER = ("exact_match", "sas")
JUDGED = ("faithfulness", "context_relevance")    # an LLM judges: they vary from run to run
METRICS = (*RETRIEVAL, *ANSWER)                  # what is scored unless asked otherwise
JUDGE_TIMEOUT_SECONDS = 60.0
LABEL = "eval_source"
MAX_DOCUMENTS = 100


class Judge(BaseModel):
    """The chat model that judges faithfulness and context relevance: an OpenAI-compatible server (checked by
    the fetch guard, as a workflow's ``api_base_url``), or OpenAI with a key from the operator's list."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(min_length=1, max_length=200)
    api_base_url: str | None = Field(default=None, max_length=2000, description="Default: OpenAI")
    api_key_env: str | None = Field(default=None, max_length=100, description="The environment variable holding "
                                                                              "its key (one STACKYARD_SECRET_ENV "
                                                                              "grants)")

    @model_validator(mode="after")
    def _allowed(self) -> Judge:
        from nodes.errors import NodeInputError
        from nodes.fetchers import check_outbound_url
        from stackyard.settings import get_settings

        if self.api_base_url:
            try:
                check_outbound_url(self.api_base_url, field="judge.api_base_url")
            except NodeInputError as exc:
                raise ValueError(str(exc)) from None
        if self.api_key_env and self.api_key_env not in get_settings().secret_env:
            raise ValueError(f"judge.api_key_env '{self.api_key_env}' is not a secret this installation grants; ask "
                             "an operator to add it to STACKYARD_SECRET_ENV")
        if not self.api_base_url and not self.api_key_env:
            raise ValueError("judge: give api_base_url (an OpenAI-compatible server) or api_key_env (for OpenAI)")
        return self


class MetricSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metrics: list[Literal["recall", "recall_multi", "mrr", "map", "ndcg", "exact_match", "sas", "faithfulness",
                          "context_relevance"]] = Field(
        default_factory=lambda: list(METRICS), min_length=1, description="What to score (latency and the failure "
                                                                         "rate always)")
    k: int = Field(default=5, ge=1, le=MAX_DOCUMENTS, strict=True, description="Retrieval metrics read the first k "
                                                                                "documents")
    match: str = Field(default="snippet", pattern=r"^(snippet|document|chunk|meta\.[A-Za-z_][A-Za-z0-9_]{0,49})$",
                       description="When a retrieved document counts as an expected source: snippet, document, "
                                   "chunk, or meta.<key> (the same value of that metadata field)")
    answer_output: str | None = Field(default=None, max_length=200, description="The output holding the answer "
                                                                                  "(default: found)")
    documents_output: str | None = Field(default=None, max_length=200, description="The output holding the "
                                                                                     "retrieved documents (default: "
                                                                                     "found)")
    sas_model: str = Field(default=MINILM, max_length=500, description="The model semantic answer similarity "
                                                                       "scores with")
    judge: Judge | None = Field(default=None, description="Faithfulness and context relevance need one")

    @model_validator(mode="after")
    def _judged(self) -> MetricSettings:
        asked = [m for m in self.metrics if m in JUDGED]
        if asked and self.judge is None:
            raise ValueError(f"{', '.join(asked)} need a judge: give judge {{model, api_base_url}} (an "
                             "OpenAI-compatible server) or leave them out")
        return self


@dataclass
class CaseRun:
    """One case as its run answered it."""

    key: str
    succeeded: bool
    answer: str | None = None
    question: str | None = None
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


def read_extras(outputs: dict[str, Any] | None) -> tuple[str | None, int | None]:
    """The prompt the run sent (an output named ``prompt``) and the tokens its replies say they used."""
    outputs = outputs or {}
    prompt = outputs.get("prompt")
    tokens = None
    for value in outputs.values():
        for reply in value if isinstance(value, list) else []:
            usage = ((reply or {}).get("meta") or {}).get("usage") if isinstance(reply, dict) else None
            if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
                tokens = (tokens or 0) + usage["total_tokens"]
    return (prompt if isinstance(prompt, str) else None), tokens


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
    """The words that tell texts apart: longer than three letters (not 'the', 'of', 'and')."""
    return {word for word in normalise(text).split() if len(word) > 3}


def snippet_matches(snippet: str, content: str) -> bool:
    """Whether a chunk's ``content`` holds the gold ``snippet``: it contains it; or the snippet contains the chunk
    and the chunk is a good part of it (40 % of its telling words: a chunk cut smaller by another chunking); or
    it shares half the snippet's telling words. A chunk sharing a few common words, or one word, does not."""
    a, b = normalise(snippet), normalise(content)
    if not a or not b:
        return False
    if a in b:
        return True
    wanted, held = _words(snippet), _words(content)
    if b in a:
        return len(held) >= 0.4 * max(len(wanted), 1)
    return bool(wanted) and len(wanted & held) >= 0.5 * len(wanted)


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
            elif match.startswith("meta."):
                wanted = (source.get("meta") or {}).get(match[5:])
                hit = wanted is not None and meta.get(match[5:]) == wanted
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
        evaluator = _sas(model_path)
        with _sas_running:    # a worker's scorer thread and a scoring task may share it; its tokenizer is not shared
            result = evaluator.run(ground_truth_answers=[c.expected_answer or "" for c in scored],
                                   predicted_answers=[c.answer or "" for c in scored])
        for case, value in zip(scored, result["individual_scores"], strict=True):
            case.scores["sas"] = float(value)


def chat_model(model: Judge, **generation_kwargs: Any) -> Any:
    """``model`` as Haystack's OpenAI chat generator, its every connection checked by the fetch guard (the judge
    here, a chat app's summarizer in ``conversations.memory``)."""
    from haystack.components.generators.chat.openai import OpenAIChatGenerator
    from haystack.utils import Secret

    from nodes.fetchers import guarded_client_kwargs
    from workflows.build import KEYLESS_ENV  # a keyless server gets a placeholder key, as a workflow's would

    key = model.api_key_env or KEYLESS_ENV
    return OpenAIChatGenerator(model=model.model, api_base_url=model.api_base_url,
                               api_key=Secret.from_env_var(key), timeout=JUDGE_TIMEOUT_SECONDS, max_retries=1,
                               generation_kwargs=generation_kwargs, http_client_kwargs=guarded_client_kwargs(None))


def judge_generator(judge: Judge) -> Any:
    """The judge, asked for JSON."""
    return chat_model(judge, response_format={"type": "json_object"}, temperature=0)


def score_judged(cases: list[CaseRun], settings: MetricSettings) -> None:
    """Faithfulness (is the answer supported by the documents?) and context relevance (do the documents bear on
    the question?), each Haystack's LLM evaluator. A judgement that fails (no reply, a reply that is not the JSON
    asked for) is an error of that case, counted, not dropped from the mean as Haystack's evaluators do."""
    from haystack.components.evaluators import ContextRelevanceEvaluator, FaithfulnessEvaluator

    wanted = [m for m in JUDGED if m in settings.metrics]
    scored = [c for c in cases if c.succeeded and c.question and c.documents]
    if not wanted or not scored or settings.judge is None:
        return
    generator = judge_generator(settings.judge)
    contexts = [[d.get("content") or "" for d in c.documents[:settings.k]] for c in scored]
    questions = [c.question or "" for c in scored]
    for metric in wanted:
        if metric == "faithfulness":
            answered = [i for i, c in enumerate(scored) if c.answer]
            evaluator = FaithfulnessEvaluator(chat_generator=generator, raise_on_failure=False, progress_bar=False)
            result = evaluator.run(questions=[questions[i] for i in answered],
                                   contexts=[contexts[i] for i in answered],
                                   predicted_answers=[scored[i].answer for i in answered]) if answered else None
            chosen = [scored[i] for i in answered]
        else:
            evaluator = ContextRelevanceEvaluator(chat_generator=generator, raise_on_failure=False,
                                                  progress_bar=False)
            result, chosen = evaluator.run(questions=questions, contexts=contexts), scored
        for case, judged in zip(chosen, (result or {}).get("results") or [], strict=True):
            score = (judged or {}).get("score")
            if not judged or judged.get("status") == "error" or score is None or math.isnan(float(score)):
                case.errors[metric] = "the judge gave no usable verdict (no reply, or not the JSON asked for)"
            else:
                case.scores[metric] = float(score)


_warm: dict[str, Any] = {}
_warm_lock = threading.Lock()
_sas_running = threading.Lock()


def _sas(model_path: str) -> Any:
    """Haystack's SAS evaluator on a local model, kept warm per process: a worker scores many evaluations, and
    loading the model costs seconds."""
    from haystack.components.evaluators import SASEvaluator

    with _warm_lock:
        if model_path not in _warm:
            evaluator = SASEvaluator(model=model_path)
            evaluator.warm_up()
            _warm[model_path] = evaluator
        return _warm[model_path]


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
