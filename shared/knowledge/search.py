"""The one retrieval path: the bot (retrieve function) and the admin recall test both call
``KnowledgeService.search``, with the tenant's RetrievalConfig, so they rank, rerank and apply the
"no good answer" threshold identically.

Steps: hybrid search with the tenant's keyword weight (the query is embedded once, inside the index);
optionally rerank the best ``rerank_candidates`` with the deployment's reranker; then compare the best
score with the tenant's threshold. Passages under the threshold are not handed to the bot, except
other chunks of an entry that clears it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.knowledge.base import KnowledgeIndex, Passage
from shared.knowledge.rerank import Reranker
from shared.observability import logger
from shared.tenant_config.retrieval import RetrievalConfig


@dataclass(frozen=True)
class RetrievalOutcome:
    """What a search found, and whether it is good enough to answer from."""

    passages: list[Passage]  # best first; only those at or above the threshold unless asked for all
    best_score: float | None  # the best passage's score, even when it is under the threshold
    threshold: float
    knowledge_version: str
    reranked: bool = False
    # Fingerprint of the settings that shaped this result (threshold, weight, reranking, k): an answer
    # cache must key on it as well as on knowledge_version, since calibrating changes answers too.
    config_version: str = ""

    @property
    def matched(self) -> bool:
        return self.best_score is not None and self.best_score >= self.threshold


@dataclass
class KnowledgeService:
    index: KnowledgeIndex
    default_threshold: float
    default_k: int
    reranker: Reranker | None = None
    rerank_candidates: int = 20
    clock: Callable[[], float] = field(default=time.perf_counter, repr=False)

    def threshold_for(self, config: RetrievalConfig) -> float:
        return config.min_answer_score if config.min_answer_score is not None else self.default_threshold

    def search(
        self,
        tenant_id: str,
        config: RetrievalConfig,
        query: str,
        k: int | None = None,
        *,
        include_below_threshold: bool = False,
    ) -> RetrievalOutcome:
        k = k or config.top_k or self.default_k
        rerank = config.rerank and self.reranker is not None
        depth = max(k, self.rerank_candidates) if rerank else k
        hits = self.index.search_hits(tenant_id, query, depth, keyword_weight=config.keyword_weight)
        passages = hits.passages
        reranked = False
        if rerank and passages and self.reranker is not None:
            started = self.clock()
            try:
                scores = self.reranker.rerank(query, [_rerank_text(p) for p in passages])
            except Exception:
                # The fused ranking is still a good answer; a reranker outage must not silence the bot.
                logger.exception("reranker failed; using the fused ranking", extra={"tenant_id": tenant_id})
            else:
                rescored = [p.model_copy(update={"score": round(s, 4)}) for p, s in zip(passages, scores, strict=True)]
                # Stable sort: equal reranker scores keep the fused order.
                passages = sorted(rescored, key=lambda p: -p.score)
                reranked = True
                logger.debug("reranked", extra={"ms": round((self.clock() - started) * 1000, 1)})
        passages = passages[:k]
        threshold = self.threshold_for(config)
        best = passages[0].score if passages else None
        if not include_below_threshold:
            # The threshold decides which entries answer; such an entry's other chunks in the top k come
            # with it (a long entry is cut into chunks, and the one stating the fact asked for may
            # score under the one that matched best).
            answering = {p.document_id for p in passages if p.score >= threshold}
            passages = [p for p in passages if p.document_id in answering]
        settings = f"{threshold}|{config.keyword_weight}|{rerank}|{k}"
        config_version = hashlib.sha256(settings.encode()).hexdigest()[:12]
        return RetrievalOutcome(passages, best, threshold, hits.version, reranked, config_version)


def _rerank_text(passage: Passage) -> str:
    # The title (or the FAQ question, kept as the section) tells the cross-encoder what the text is about.
    heading = passage.section or passage.title
    return passage.text if passage.text.startswith(heading) else f"{heading}\n{passage.text}"
