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
