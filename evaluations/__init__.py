"""Evaluations: test sets, evaluation runs of a pinned version over a pinned test-set revision, metrics, comparison and the publishing gate."""
