"""A knowledge base's chunking and retrieval defaults, checked before anything is stored or embedded.

Chunking is Haystack's ``RecursiveDocumentSplitter`` (the ingest template's splitter): it tries the separators in
order and keeps pieces at most ``length`` units long, ``overlap`` units shared between neighbours. A chunk longer
than the embedding model's window would be cut silently when embedded, so ``length`` is refused past it.

Parent–child chunking (``parent_length``) is Haystack's ``HierarchicalDocumentSplitter``: a document is cut into
parents of ``parent_length`` words and each parent into chunks of ``length`` words. Chunks are embedded and
matched; a query answers with a chunk's parent (Haystack's ``AutoMergingRetriever``) when more than
``retrieval.merge_threshold`` of that parent's chunks matched, so the LLM reads the whole passage.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from stackyard.errors import StackyardError
from stackyard.settings import Settings

DEFAULT_EMBEDDING_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
MAX_PARENT_WORDS = 2000        # a parent is read whole by the LLM; Milvus keeps at most 65,535 bytes of text
UNKNOWN_WINDOW = 512            # tokens, when the model's folder does not say
CHARS_PER_TOKEN = 8             # a generous bound: a chunk of more characters than window × 8 surely overflows it


class BadKnowledgeSettings(StackyardError):
    status = 422


class Chunking(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit: Literal["word", "char"] = Field(default="word", description="What length and overlap count.")
    length: int = Field(default=200, strict=True, description="Most units in one chunk.")
    overlap: int = Field(default=20, ge=0, strict=True, description="Units a chunk repeats from the one before it.")
    separators: list[str] = Field(default_factory=lambda: ["\n\n", "\n", ". ", " "], max_length=20,
                                  description="Tried in order: a piece still too long is split at the next one.")
    parent_length: int | None = Field(
        default=None, strict=True,
        description="Parent–child: cut parents of this many words, and chunks of `length` words from each; queries "
                    "match chunks and answer with their parent. Counts words; separators do not apply.")

    def check(self, window: int) -> Chunking:
        """Itself, if it can be applied for a model with a ``window``-token input; else the error naming the fix."""
        limit = window if self.unit == "word" else window * CHARS_PER_TOKEN
        if not 1 <= self.length <= limit:
            raise BadKnowledgeSettings(
                f"chunking.length must be from 1 to {limit} {self.unit}s: the embedding model reads at most {window} "
                f"tokens, and a longer chunk is cut before it is embedded. Pick a length in that range.",
                field="chunking.length")
        if self.overlap >= self.length:
            raise BadKnowledgeSettings(f"chunking.overlap ({self.overlap}) must be less than chunking.length "
                                       f"({self.length}); 10-20 % of it is usual.", field="chunking.overlap")
        if not self.separators or any(not s or len(s) > 20 for s in self.separators):
            raise BadKnowledgeSettings("chunking.separators must be 1-20 non-empty strings of at most 20 characters "
                                       '(e.g. ["\\n\\n", "\\n", ". ", " "]).', field="chunking.separators")
        if "sentence" in self.separators:
            raise BadKnowledgeSettings('chunking.separators: "sentence" asks Haystack for NLTK\'s sentence model, which '
                                       'is downloaded at run time and this installation does not download; use ". " '
                                       "to split at sentence ends.", field="chunking.separators")
        if self.parent_length is not None:
            self._check_parents()
        return self

    def _check_parents(self) -> None:
        assert self.parent_length is not None
        if self.unit != "word":
            raise BadKnowledgeSettings("chunking.parent_length counts words (Haystack's hierarchical splitter cuts by "
                                       'word): set chunking.unit to "word", or leave parent_length out.',
                                       field="chunking.unit")
        if not self.length < self.parent_length <= MAX_PARENT_WORDS:
            raise BadKnowledgeSettings(f"chunking.parent_length must be more than chunking.length ({self.length}) and "
                                       f"at most {MAX_PARENT_WORDS} words: a parent holds several chunks and is "
                                       "read whole by the LLM. 3-10 times the chunk length is usual.",
                                       field="chunking.parent_length")


# What a score means in each retrieval mode: a threshold is read on its mode's scale.
SCALES: dict[str, tuple[str, float, float]] = {
    # milvus-haystack reports cosine similarity c as (c + 1) / 2: 0.5 is unrelated, 1 the same direction
    "dense": ("cosine similarity as (cosine + 1) / 2, 0 to 1, higher is closer", 0.0, 1.0),
    "keyword": ("BM25, 0 and up, higher matches more of the query's words", 0.0, 1000.0),
    "hybrid": ("reciprocal rank fusion of the dense and keyword ranks, 0 to 0.033", 0.0, 2 / 61),
}


# With a ranker, scores are its sigmoid-scaled relevance (the ranker node's scale_score default).
RANKED = ("cross-encoder relevance, 0 to 1, higher is more relevant", 0.0, 1.0)


class Retrieval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["dense", "keyword", "hybrid"] = Field(
        default="dense", description="dense: nearest embeddings; keyword: BM25 over the chunk text; hybrid: both, "
                                     "fused by rank. Every base indexes both, so the mode can change at any time.")
    top_k: int = Field(default=5, ge=1, le=100, strict=True, description="Chunks a query returns.")
    score_threshold: float | None = Field(default=None, strict=True,
                                          description="Leave out chunks scoring below this, on the mode's scale "
                                                      "(see `scale`).")
    ranker: str | None = Field(default=None, min_length=1, max_length=500,
                               description="A cross-encoder (a model this machine has) that re-orders the candidates: "
                                           "what the 'Cross-encoder ranker' node after the retriever does.")
    candidates: int = Field(default=20, ge=1, le=100, strict=True,
                            description="With a ranker: chunks retrieved for it to re-order, of which top_k are kept.")
    merge_threshold: float = Field(default=0.5, ge=0.0, lt=1.0,
                                   description="Parent–child bases: a query answers with a chunk's parent when more "
                                               "than this share of the parent's chunks matched (0: always), else "
                                               "with the chunks: the 'Auto-merging retriever' node's threshold "
                                               "(0.5 by default in both).")

    @property
    def scale(self) -> str:
        return RANKED[0] if self.ranker else SCALES[self.mode][0]

    def check(self) -> Retrieval:
        scale, low, high = RANKED if self.ranker else SCALES[self.mode]
        if self.score_threshold is not None and not low <= self.score_threshold <= high:
            raise BadKnowledgeSettings(f"retrieval.score_threshold {self.score_threshold} is off the {self.mode} "
                                       f"scale ({scale}); pick a value in it, or none.",
                                       field="retrieval.score_threshold")
        return self


def asked(defaults: dict, *, mode: str | None = None, top_k: int | None = None,
          score_threshold: float | None = None, rank: bool | None = None) -> Retrieval:
    """A query's retrieval settings: what it gives over the base's ``defaults`` (``rank=False``: without the
    base's ranker). The base's threshold is kept only on the scale it was set for."""
    base = Retrieval(**defaults)
    chosen = mode or base.mode
    ranker = base.ranker if rank is not False else None
    same_scale = (ranker is not None) if base.ranker else (chosen == base.mode)
    threshold = score_threshold if score_threshold is not None else (base.score_threshold if same_scale else None)
    return Retrieval(mode=chosen, top_k=top_k or base.top_k, score_threshold=threshold, ranker=ranker,
                     candidates=max(base.candidates, top_k or base.top_k),
                     merge_threshold=base.merge_threshold).check()


def model_window(model: str, settings: Settings) -> int:
    """The most tokens ``model`` embeds at once, read from its local folder (sentence-transformers' config, then
    the tokenizer's); :data:`UNKNOWN_WINDOW` when the folder does not say."""
    folder = settings.local_model_path(model)
    if folder is None:
        return UNKNOWN_WINDOW
    for name, key in (("sentence_bert_config.json", "max_seq_length"), ("tokenizer_config.json", "model_max_length")):
        try:
            value = json.loads((Path(folder) / name).read_text(encoding="utf-8")).get(key)
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(value, int) and 0 < value < 1_000_000:
            return value
    return UNKNOWN_WINDOW
