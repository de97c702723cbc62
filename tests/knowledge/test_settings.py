"""Retrieval settings a query gets: what it asks over the base's defaults, with a threshold only on its own
scale."""

from __future__ import annotations

import pytest

from knowledge.settings import BadKnowledgeSettings, asked


def test_the_bases_threshold_stays_with_the_bases_mode():
    defaults = {"mode": "dense", "top_k": 5, "score_threshold": 0.3}
    assert (asked(defaults).mode, asked(defaults).score_threshold, asked(defaults).top_k) == ("dense", 0.3, 5)
    hybrid = asked(defaults, mode="hybrid", top_k=8)
    assert (hybrid.mode, hybrid.score_threshold, hybrid.top_k) == ("hybrid", None, 8)   # 0.3 is off its scale
    assert asked(defaults, mode="keyword", score_threshold=2.5).score_threshold == 2.5


@pytest.mark.parametrize(("mode", "threshold"), [("dense", 1.5), ("keyword", -0.1), ("hybrid", 0.05)])
def test_a_threshold_off_the_modes_scale_is_refused_naming_the_scale(mode, threshold):
    with pytest.raises(BadKnowledgeSettings, match=f"off the {mode} scale") as refused:
        asked({}, mode=mode, score_threshold=threshold)
    assert refused.value.field == "retrieval.score_threshold"


def test_with_a_ranker_scores_and_the_threshold_are_the_rankers_unless_the_query_leaves_it_out():
    defaults = {"mode": "dense", "top_k": 5, "score_threshold": 0.8, "ranker": "acme/ranker", "candidates": 10}
    ranked = asked(defaults, mode="hybrid", top_k=20)
    assert (ranked.ranker, ranked.score_threshold, ranked.candidates) == ("acme/ranker", 0.8, 20)
    assert ranked.scale.startswith("cross-encoder relevance")
    plain = asked(defaults, rank=False)
    assert (plain.ranker, plain.score_threshold) == (None, None) and plain.scale.startswith("cosine")


def test_parent_child_needs_words_and_parents_longer_than_chunks_but_readable_whole():
    from knowledge.settings import MAX_PARENT_WORDS, Chunking

    assert Chunking(length=50, overlap=5, parent_length=300).check(256).parent_length == 300
    for chunking, field in ((Chunking(length=50, parent_length=50), "chunking.parent_length"),
                            (Chunking(length=50, parent_length=MAX_PARENT_WORDS + 1), "chunking.parent_length"),
                            (Chunking(unit="char", length=200, parent_length=1000), "chunking.unit")):
        with pytest.raises(BadKnowledgeSettings) as refused:
            chunking.check(256)
        assert refused.value.field == field


def test_settings_stored_before_parent_child_existed_count_as_the_same_chunking():
    from knowledge.models import chunking_key
    from knowledge.settings import Chunking

    stored = {"unit": "word", "length": 200, "overlap": 20, "separators": ["\n\n", "\n", ". ", " "]}
    assert chunking_key(stored) == chunking_key(Chunking(**stored).model_dump())
    assert chunking_key(stored) != chunking_key(Chunking(**stored, parent_length=800).model_dump())


def test_a_query_on_a_parent_child_base_merges_as_the_base_says():
    assert asked({}).merge_threshold == 0.5                      # the auto-merging retriever node's default
    assert asked({"merge_threshold": 0.0}, mode="keyword").merge_threshold == 0.0
