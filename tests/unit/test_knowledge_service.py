"""KnowledgeService (the one search path of the bot and the admin API) and threshold calibration."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.knowledge.base import Document, DocumentSummary, IndexResult, KnowledgeIndex, Passage, SearchHits
from shared.knowledge.calibration import (
    CalibrationRequest,
    calibrate,
    knowledge_languages,
    near_miss_probes,
    reword,
    threshold_for_decline,
)
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.rerank import Reranker
from shared.knowledge.search import KnowledgeService
from shared.tenant_config.retrieval import RetrievalConfig
from tests.unit.test_knowledge_local_index import DOCS, FakeEmbedder

QUESTION = "how many days do I have to return an item for a refund?"


class FakeReranker(Reranker):
    """Scores by a fixed preference per document title; records what it was asked."""

    name = "fake"

    def __init__(self, preferred: str, fail: bool = False) -> None:
        self.preferred = preferred
        self.fail = fail
        self.calls: list[tuple[str, list[str]]] = []

    def rerank(self, query: str, texts: list[str]) -> list[float]:
        self.calls.append((query, texts))
        if self.fail:
            raise RuntimeError("reranker down")
        return [0.97 if text.startswith(self.preferred) else 0.05 for text in texts]


@pytest.fixture
def index(tmp_path: Path) -> LocalHybridIndex:
    index = LocalHybridIndex(tmp_path, FakeEmbedder())
    index.index("acme", DOCS)
    return index


def service(index: LocalHybridIndex, reranker: Reranker | None = None) -> KnowledgeService:
    return KnowledgeService(index, default_threshold=0.35, default_k=4, reranker=reranker, rerank_candidates=10)


def test_passages_under_the_tenant_threshold_are_not_handed_out(index: LocalHybridIndex) -> None:
    everything = service(index).search("acme", RetrievalConfig(min_answer_score=0.0), QUESTION, 3)
    assert [p.document_id for p in everything.passages][0] == "returns" and len(everything.passages) == 3
    cut = (everything.passages[0].score + everything.passages[1].score) / 2
    outcome = service(index).search("acme", RetrievalConfig(min_answer_score=cut), QUESTION, 3)
    assert [p.document_id for p in outcome.passages] == ["returns"]
    assert outcome.threshold == cut and outcome.best_score == everything.passages[0].score and outcome.matched
    assert outcome.knowledge_version == index.version("acme")


def test_no_good_answer_reports_the_best_score_and_no_passages(index: LocalHybridIndex) -> None:
    outcome = service(index).search("acme", RetrievalConfig(min_answer_score=0.99), QUESTION, 3)
    assert outcome.passages == [] and not outcome.matched and outcome.best_score is not None
    shown = service(index).search(
        "acme", RetrievalConfig(min_answer_score=0.99), QUESTION, 3, include_below_threshold=True
    )
    assert len(shown.passages) == 3 and not shown.matched


def test_the_deployment_threshold_and_k_apply_when_the_tenant_sets_none(index: LocalHybridIndex) -> None:
    outcome = service(index).search("acme", RetrievalConfig(), QUESTION, include_below_threshold=True)
    assert outcome.threshold == 0.35 and len(outcome.passages) == 3  # default_k 4, three chunks exist
    assert (
        len(service(index).search("acme", RetrievalConfig(top_k=1), QUESTION, include_below_threshold=True).passages)
        == 1
    )


def test_the_tenant_keyword_weight_changes_the_scores(index: LocalHybridIndex) -> None:
    keyword = service(index).search(
        "acme", RetrievalConfig(keyword_weight=1.0), "refund", 3, include_below_threshold=True
    )
    dense = service(index).search(
        "acme", RetrievalConfig(keyword_weight=0.0), "refund", 3, include_below_threshold=True
    )
    assert [p.score for p in keyword.passages] != [p.score for p in dense.passages]


def test_a_tenant_with_reranking_gets_the_reranker_order_and_scores(index: LocalHybridIndex) -> None:
    reranker = FakeReranker(preferred="Shipping times")
    outcome = service(index, reranker).search("acme", RetrievalConfig(rerank=True), QUESTION, 2)
    assert outcome.reranked and [p.document_id for p in outcome.passages] == ["shipping"]
    assert outcome.passages[0].score == 0.97 and outcome.best_score == 0.97
    (query, texts) = reranker.calls[0]
    assert query == QUESTION and len(texts) == 3  # every candidate, with its title for context
    assert any(text.startswith("Return policy\n") for text in texts)


def test_reranking_is_per_tenant_and_a_failure_falls_back_to_the_fused_ranking(index: LocalHybridIndex) -> None:
    reranker = FakeReranker(preferred="Shipping times")
    plain = service(index, reranker).search("acme", RetrievalConfig(), QUESTION, 2)
    assert not plain.reranked and reranker.calls == []
    broken = FakeReranker(preferred="Shipping times", fail=True)
    fallback = service(index, broken).search("acme", RetrievalConfig(rerank=True), QUESTION, 2)
    assert not fallback.reranked and fallback.passages[0].document_id == "returns"
    unconfigured = service(index).search("acme", RetrievalConfig(rerank=True), QUESTION, 2)
    assert not unconfigured.reranked


# --- calibration ---


def test_threshold_for_decline_is_just_above_the_quantile() -> None:
    scores = [0.1 * n for n in range(10)]  # 0.0 .. 0.9
    assert threshold_for_decline(scores, 0.9) == pytest.approx(0.8001)
    assert sum(s < threshold_for_decline(scores, 0.9) for s in scores) / len(scores) >= 0.9
    assert threshold_for_decline([0.0] * 5, 0.9) == 0.05  # never 0: some evidence is always needed
    assert threshold_for_decline([0.99] * 5, 0.9) == 0.95
    with pytest.raises(ValueError):
        threshold_for_decline([], 0.9)


def test_calibration_sets_the_threshold_from_off_topic_examples(index: LocalHybridIndex) -> None:
    knowledge = service(index)
    off_topic = ["return refund days", "delivery working days", "invoice email", "weather", "football"]
    request = CalibrationRequest(off_topic=off_topic, target_decline=0.6, min_threshold=0.0)
    report, config = calibrate(knowledge, "acme", RetrievalConfig(), request)
    scores = sorted(
        knowledge.search("acme", RetrievalConfig(), q, 1, include_below_threshold=True).best_score or 0.0
        for q in off_topic
    )
    assert report.probe_threshold == pytest.approx(max(0.05, round(scores[2] + 0.0001, 4)))
    assert report.threshold == config.min_answer_score == report.probe_threshold
    assert report.off_topic_decline_rate >= 0.6 and report.off_topic_questions == 5
    assert report.previous_threshold == 0.35 and config.calibrated_at is not None
    assert report.in_scope_questions == 3  # the index's own titles
    assert report.knowledge_version == index.version("acme")


def test_calibration_has_no_floor_unless_the_tenant_sets_one(index: LocalHybridIndex) -> None:
    report, config = calibrate(service(index), "acme", RetrievalConfig(), CalibrationRequest())
    assert report.floor is None and report.threshold == report.probe_threshold == config.min_answer_score
    # The knowledge is English and Chinese: probes in both, and near misses made from its own words.
    assert report.languages == ["zh", "en"] and report.near_miss_questions > 0
    assert report.off_topic_decline_rate >= 0.9 and config.auto_calibrate is True
    floored, config = calibrate(service(index), "acme", RetrievalConfig(), CalibrationRequest(min_threshold=0.95))
    assert floored.threshold == 0.95 and config.auto_calibrate is False


def test_near_miss_probes_and_rewording_come_from_the_tenants_words() -> None:
    probes = near_miss_probes(["How do I return an item?", "宽带怎么报修"], ["hello", "你好", "tell me a joke"])
    assert probes == ["hello return", "宽带 你好", "tell me a joke return"]
    assert reword("how do I return this item quickly") == "how I return item quickly"
    assert reword("宽带怎么报修") == "宽怎么修"  # every third character dropped
    assert knowledge_languages(["退货", "Returns", "发票"]) == ["zh", "en"]


def test_calibration_warns_when_the_knowledge_itself_would_be_declined(index: LocalHybridIndex) -> None:
    own_questions = ["Return policy", "Shipping times", "发票"]
    request = CalibrationRequest(off_topic=own_questions * 2, in_scope=own_questions, min_threshold=0.0)
    report, _ = calibrate(service(index), "acme", RetrievalConfig(), request)
    assert report.in_scope_answer_rate is not None and report.in_scope_answer_rate < 0.9
    assert report.warnings and "off-topic examples look like the knowledge" in report.warnings[0]


def test_calibrating_an_empty_knowledge_base_warns(tmp_path: Path) -> None:
    empty = KnowledgeService(LocalHybridIndex(tmp_path, FakeEmbedder()), default_threshold=0.35, default_k=4)
    report, _ = calibrate(empty, "acme", RetrievalConfig(), CalibrationRequest())
    assert report.in_scope_answer_rate is None and "empty" in report.warnings[0]


def test_documents_fixture_is_what_the_tests_assume() -> None:
    assert [d.id for d in DOCS] == ["returns", "shipping", "invoice"]
    assert isinstance(DOCS[0], Document)


class FixedIndex(KnowledgeIndex):
    """Returns the given passages for any query (unit-test fake)."""

    def __init__(self, passages: list[Passage]) -> None:
        self.passages = passages

    def index(self, tenant_id: str, documents: list[Document]) -> IndexResult:
        raise NotImplementedError

    def search_hits(self, tenant_id: str, query: str, k: int, *, keyword_weight: float | None = None) -> SearchHits:
        return SearchHits(passages=self.passages[:k], version="v1")

    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        raise NotImplementedError

    def documents(self, tenant_id: str) -> list[DocumentSummary]:
        raise NotImplementedError

    def version(self, tenant_id: str) -> str:
        return "v1"


def test_the_other_chunks_of_an_entry_that_clears_the_threshold_come_with_it() -> None:
    def hit(document_id: str, score: float) -> Passage:
        return Passage(document_id=document_id, title=document_id, text=f"{document_id} {score}", score=score)

    fixed = FixedIndex([hit("shipping", 0.63), hit("tracking", 0.38), hit("shipping", 0.30), hit("returns", 0.2)])

    outcome = KnowledgeService(fixed, default_threshold=0.5, default_k=4).search("acme", RetrievalConfig(), "q")

    assert [(p.document_id, p.score) for p in outcome.passages] == [("shipping", 0.63), ("shipping", 0.30)]
    assert outcome.best_score == 0.63 and outcome.matched
