"""The fusion shared by both backends: absolute, comparable across queries, 0..1."""

from __future__ import annotations

import math

import numpy as np
import pytest

from shared.knowledge.scoring import (
    DENSE_CEILING,
    DENSE_FLOOR,
    bm25_idf,
    dense_evidence,
    fuse,
    keyword_ratio,
    rank,
    term_bound,
)


def test_idf_is_largest_for_unknown_terms_and_never_negative() -> None:
    assert bm25_idf(0, 100) > bm25_idf(1, 100) > bm25_idf(50, 100) > bm25_idf(100, 100) > 0.0
    assert bm25_idf(0, 100) == pytest.approx(math.log(1 + 100.5 / 0.5))


def test_term_bound_is_the_score_of_one_occurrence_in_an_average_passage() -> None:
    # Lucene: idf * freq / (freq + k1 * (1 - b + b * dl/avgdl)) with freq=1, dl=avgdl -> idf / (1 + k1)
    assert term_bound(2.0, k1=1.2) == pytest.approx(2.0 / 2.2)
    # OpenSearch's legacy BM25 reports boost (k1 + 1): the bound is then the idf itself
    assert term_bound(2.0, k1=1.2, boost=2.2) == pytest.approx(2.0)


def test_keyword_ratio() -> None:
    raw = np.array([0.0, 1.0, 4.0], dtype=np.float32)
    assert keyword_ratio(raw, 2.0).tolist() == [0.0, 0.5, 2.0]
    assert keyword_ratio(raw, 0.0).tolist() == [0.0, 0.0, 0.0]


def test_dense_evidence_ramps_between_floor_and_ceiling() -> None:
    cosines = np.array([-0.5, DENSE_FLOOR, (DENSE_FLOOR + DENSE_CEILING) / 2, DENSE_CEILING, 1.0], dtype=np.float32)
    assert dense_evidence(cosines).tolist() == pytest.approx([0.0, 0.0, 0.5, 1.0, 1.0])


def test_fuse_is_a_weighted_mean_in_zero_to_one() -> None:
    ratios = np.array([0.0, 0.5, 3.0, 1.0], dtype=np.float32)
    cosines = np.array([0.0, DENSE_CEILING, DENSE_CEILING, DENSE_FLOOR], dtype=np.float32)
    assert fuse(ratios, cosines, 0.5).tolist() == pytest.approx([0.0, 0.75, 1.0, 0.5])
    assert fuse(ratios, cosines, 1.0).tolist() == pytest.approx([0.0, 0.5, 1.0, 1.0])
    assert fuse(ratios, cosines, 0.0).tolist() == pytest.approx([0.0, 1.0, 1.0, 0.0])


def test_fuse_rejects_a_weight_outside_zero_to_one() -> None:
    with pytest.raises(ValueError, match="keyword_weight"):
        fuse(np.zeros(1, dtype=np.float32), np.zeros(1, dtype=np.float32), 1.5)


def test_a_query_matching_nothing_scores_zero_whatever_the_corpus() -> None:
    # Per-query normalisation would give the best of bad candidates a high score; this must not.
    scores = fuse(np.zeros(3, dtype=np.float32), np.array([0.1, 0.15, 0.05], dtype=np.float32))
    assert scores.max() == 0.0


def test_rank_breaks_ties_by_the_uncapped_keyword_ratio() -> None:
    ratios = np.array([1.5, 3.0, 0.2, 1.0], dtype=np.float32)
    scores = fuse(ratios, np.zeros(4, dtype=np.float32), 1.0)  # three capped at 1.0
    assert rank(scores, ratios, 3) == [1, 0, 3]
    assert rank(scores, ratios, 0) == []
