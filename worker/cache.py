"""Warm pipelines: each worker process builds a version's pipeline once and reuses it.

A bounded LRU keyed by version id; a pipeline that reads a knowledge base is rebuilt when a re-index has
switched the base to another index generation since it was built, or its first document was indexed. Models are
shared across pipelines in the process: Sentence Transformers embedders already share backends by model config
(their factory), and local Transformers generators share one loaded HF pipeline per config here. ``model_loads``
counts the models this process actually loaded; each run records how many it caused (0 when warm).
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from haystack import Pipeline

from knowledge.bases import serving_generations
from knowledge.search import named_bases
from nodes.models import load_failure
from workflows.spec import WorkflowSpec
from workflows.validation import build_pipeline

_GENERATOR = "TransformersChatGenerator"


def _embedder_backends() -> int:
    from haystack_integrations.components.embedders.sentence_transformers.embedding_backend.backend import (
        _SentenceTransformersEmbeddingBackendFactory,
    )

    return len(_SentenceTransformersEmbeddingBackendFactory._instances)


class WarmPipelines:
    def __init__(self, size: int) -> None:
        self.size = size
        self.model_loads = 0
        self._pipelines: OrderedDict[str, tuple[WorkflowSpec, Pipeline]] = OrderedDict()
        # the knowledge bases each cached pipeline reads, and the index generations it was built on
        self._served: dict[str, tuple[frozenset[str], dict[str, tuple[str, int, bool]]]] = {}
        self._generators: dict[str, Any] = {}
        self._lock = threading.RLock()

    def get(self, key: str, load_spec: Callable[[], WorkflowSpec]) -> tuple[WorkflowSpec, Pipeline, int]:
        """The spec and warm pipeline of ``key`` (a version id: immutable, so safe to cache) and the number
        of models loaded to get them; ``load_spec`` is called only on a miss."""
        with self._lock:
            if key in self._pipelines and self._current(key):
                self._pipelines.move_to_end(key)
                return (*self._pipelines[key], 0)
            spec = load_spec()
            names = frozenset(named_bases(spec.model_dump(mode="json")))
            served = serving_generations(names)
            pipeline = build_pipeline(spec)
            loads = self._warm(pipeline)
            self._pipelines[key], self._served[key] = (spec, pipeline), (names, served)
            while len(self._pipelines) > self.size:
                self._served.pop(self._pipelines.popitem(last=False)[0], None)
            self.model_loads += loads
            return spec, pipeline, loads

    def _current(self, key: str) -> bool:
        """Whether the cached pipeline still reads the generations its knowledge bases serve: a re-index that
        switched one since it was built makes it stale, and so does the first document indexed into a base that
        had none (its store found no collection then). One small query, only for pipelines that read a base."""
        names, served = self._served.get(key, (frozenset(), {}))
        return not names or serving_generations(names) == served

    def _warm(self, pipeline: Pipeline) -> int:
        """Load every node's models, one node at a time so a failure names its node (``NodeLoadError``)."""
        before = _embedder_backends()
        loaded = 0
        for name, component in pipeline.walk():
            try:
                loaded += self._warm_one(component)
            except Exception as exc:  # noqa: BLE001 - whatever a component's warm-up raises is its node's failure
                raise load_failure(name, component, exc) from exc
        return loaded + (_embedder_backends() - before)

    def _warm_one(self, component: Any) -> int:
        if type(component).__name__ == _GENERATOR:
            config = json.dumps(component.huggingface_pipeline_kwargs, sort_keys=True, default=str)
            if config in self._generators:
                component.pipeline = self._generators[config]
                return 0
            component.warm_up()
            self._generators[config] = component.pipeline
            return 1
        if hasattr(component, "warm_up"):
            component.warm_up()
        return 0

    def clear(self) -> None:
        with self._lock:
            self._pipelines.clear()
            self._served.clear()
            self._generators.clear()
