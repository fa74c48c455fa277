"""Hybrid scoring shared by every index backend: one fusion, so local and OpenSearch rank alike.

The bot decides "I don't know" by comparing a passage's score with a fixed threshold
(``Settings.min_answer_score``), so the fused score must mean the same thing for every query. Per-query
normalisations (min-max, rank fusion) always give the best hit a high score, even for a question the
knowledge base cannot answer. Both signals are therefore mapped to *absolute* evidence in 0..1 first:

- keyword evidence: the BM25 score divided by what the query would score against an average-length
  passage containing each query term once (the "keyword ratio"), capped at 1. Terms absent from the
  knowledge base count in that bound, so a query about things the tenant never wrote about scores low.
- dense evidence: cosine similarity, mapped linearly from [DENSE_FLOOR, DENSE_CEILING] onto 0..1.
  USE cosines between unrelated texts sit around 0.1-0.35 and paraphrases around 0.55-0.85.

The fused score is their weighted mean. It also ranks better than rank fusion: on StackFAQ
(`make eval`, 625 queries) R@1/R@5/MRR@10 are 0.824/0.981/0.889, against 0.757/0.971/0.849
for reciprocal-rank fusion of the same two rankings (BM25 alone 0.666/0.928/0.776, dense alone
0.792/0.947/0.858). Ranking barely moves for floor/ceiling/weight within 0.1-0.3/0.7-0.9/0.4-0.6.
For FAQ entries with paraphrases the embedded index then multiplies a row's fused score by how
decisively a per-tenant model places the question on that entry (entry_model.py); HINT3 numbers for
both are in docs/quality.md.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

DEFAULT_KEYWORD_WEIGHT = 0.5
DENSE_FLOOR = 0.2
DENSE_CEILING = 0.8
# Lucene's BM25 defaults, used by the local index too so both backends score terms the same way.
BM25_K1 = 1.2
BM25_B = 0.75


def bm25_idf(doc_freq: int, doc_count: int) -> float:
    """Lucene's BM25 idf (never negative). doc_freq=0 gives the largest idf: an unknown term."""
    return math.log(1.0 + (doc_count - doc_freq + 0.5) / (doc_freq + 0.5))


def term_bound(idf: float, k1: float = BM25_K1, boost: float = 1.0) -> float:
    """A term's BM25 score in an average-length passage where it occurs once: boost*idf*1/(1+k1)."""
    return boost * idf / (1.0 + k1)


def keyword_ratio(raw_scores: NDArray[np.float32], bound: float) -> NDArray[np.float32]:
    """BM25 scores as a multiple of the query's bound (1.0: every term once in an average passage)."""
    import numpy as np

    if bound <= 0.0:
        return np.zeros_like(raw_scores, dtype=np.float32)
    return (np.maximum(raw_scores, 0.0) / bound).astype(np.float32)


def dense_evidence(
    cosines: NDArray[np.float32], floor: float = DENSE_FLOOR, ceiling: float = DENSE_CEILING
) -> NDArray[np.float32]:
    import numpy as np

    if ceiling <= floor:
        raise ValueError(f"the cosine ceiling ({ceiling}) must be above the floor ({floor})")
    return np.clip((cosines - floor) / (ceiling - floor), 0.0, 1.0).astype(np.float32)


def fuse(
    keyword_ratios: NDArray[np.float32],
    cosines: NDArray[np.float32],
    keyword_weight: float = DEFAULT_KEYWORD_WEIGHT,
    floor: float = DENSE_FLOOR,
    ceiling: float = DENSE_CEILING,
) -> NDArray[np.float32]:
    """Final scores in 0..1: weighted mean of keyword evidence (the ratio, capped at 1) and dense
    evidence (the cosine mapped from [floor, ceiling] onto 0..1; each embedding model has its range)."""
    import numpy as np

    if not 0.0 <= keyword_weight <= 1.0:
        raise ValueError(f"keyword_weight must be within 0..1, got {keyword_weight}")
    keyword = np.clip(keyword_ratios, 0.0, 1.0)
    dense = dense_evidence(cosines, floor, ceiling)
    return (keyword_weight * keyword + (1.0 - keyword_weight) * dense).astype(np.float32)


def rank(scores: NDArray[np.float32], keyword_ratios: NDArray[np.float32], k: int) -> list[int]:
    """Indices of the k best, best first. Equal scores (e.g. several keyword ratios capped at 1) are
    ordered by the uncapped keyword ratio, then by position, so results are deterministic."""
    import numpy as np

    if k <= 0 or len(scores) == 0:
        return []
    candidates = np.arange(len(scores))
    if len(scores) > 4 * k + 64:
        # Sort only the best few (a full sort of 100k scores costs ~10 ms): every score tied with the
        # k-th best is kept, so the tie-break below still sees all of them.
        kth = np.partition(scores, len(scores) - k)[len(scores) - k]
        candidates = np.flatnonzero(scores >= kth)
    order = candidates[np.lexsort((candidates, -keyword_ratios[candidates], -scores[candidates]))]
    return [int(i) for i in order[:k]]


def rank_groups(
    scores: NDArray[np.float32], keyword_ratios: NDArray[np.float32], groups: list[int] | list[str], k: int
) -> list[int]:
    """Like ``rank``, but at most one position per group (the group's best): the k best chunks when a
    chunk is indexed as several rows (one per phrasing of a FAQ question)."""
    wanted = k
    while True:
        chosen: list[int] = []
        seen: set[int | str] = set()
        for n in rank(scores, keyword_ratios, wanted):
            if groups[n] not in seen:
                seen.add(groups[n])
                chosen.append(n)
                if len(chosen) == k:
                    return chosen
        if wanted >= len(scores):
            return chosen
        wanted *= 4  # rows of the same chunk crowded the top: look deeper
