"""The retrieve function's handler: parse at the edge, delegate, map errors; never a stack trace."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import functions.retrieve.handler as retrieve
from shared import wiring
from shared.errors import Forbidden
from shared.knowledge.base import Document, DocumentSummary, IndexResult, KnowledgeIndex, SearchHits
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.retrieve_contract import RetrieveRequest
from shared.knowledge.retrieve_service import RetrieveService, StaticConfigs, StoredTenantConfigs
from shared.knowledge.search import KnowledgeService
from shared.settings import get_settings
from shared.state.records import Tenant
from shared.tenant_config import TenantConfig, TenantConfigCache
from shared.tenant_config.retrieval import RetrievalConfig
from tests.events import lambda_context
from tests.unit.fakes import InMemoryStateStore
from tests.unit.test_knowledge_local_index import DOCS, FakeEmbedder


def service_for(index: KnowledgeIndex, default_k: int = 2, config: RetrievalConfig | None = None) -> RetrieveService:
    knowledge = KnowledgeService(index, default_threshold=0.0, default_k=default_k)
    return RetrieveService(knowledge, StaticConfigs(config))


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalHybridIndex:
    index = LocalHybridIndex(tmp_path, FakeEmbedder())
    index.index("acme", DOCS)
    monkeypatch.setattr(wiring, "retrieve_service", lambda: service_for(index))
    return index


def invoke(event: Any) -> dict[str, Any]:
    response = retrieve.handler(event, lambda_context("kefu-retrieve"))
    json.dumps(response)  # what Lambda returns must be JSON
    return response


def test_returns_passages_in_the_wire_format(index: LocalHybridIndex) -> None:
    response = invoke({"tenantId": "acme", "query": "how do I return an item for a refund?", "k": 3})
    passages = response["passages"]
    assert len(passages) == 3
    assert set(response) == {
        "passages",
        "knowledgeVersion",
        "configVersion",
        "bestScore",
        "threshold",
        "matched",
        "reranked",
    }
    assert set(passages[0]) == {"documentId", "title", "section", "text", "url", "score"}
    assert response["knowledgeVersion"] == index.version("acme")
    assert response["bestScore"] == passages[0]["score"] and response["matched"] is True
    assert passages[0]["documentId"] == "returns"
    assert passages[0]["url"] == "https://s.example/r"
    assert passages[0]["score"] >= passages[1]["score"] >= passages[2]["score"]


def test_k_defaults_to_the_deployment_setting(index: LocalHybridIndex) -> None:
    assert len(invoke({"tenantId": "acme", "query": "refund"})["passages"]) == 2


def test_unknown_tenant_has_no_passages(index: LocalHybridIndex) -> None:
    response = invoke({"tenantId": "nobody", "query": "refund"})
    assert response["passages"] == [] and response["matched"] is False and response["bestScore"] is None
    assert response["knowledgeVersion"] == "empty"


def test_the_tenant_threshold_filters_passages_and_is_reported(
    index: LocalHybridIndex, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = invoke({"tenantId": "acme", "query": "how do I return an item for a refund?", "k": 3})
    best, second = everything["passages"][0]["score"], everything["passages"][1]["score"]
    threshold = round((best + second) / 2, 4)
    strict = service_for(index, config=RetrievalConfig(min_answer_score=threshold))
    monkeypatch.setattr(wiring, "retrieve_service", lambda: strict)
    response = invoke({"tenantId": "acme", "query": "how do I return an item for a refund?", "k": 3})
    assert [p["documentId"] for p in response["passages"]] == ["returns"]
    assert response["threshold"] == threshold and response["bestScore"] == best and response["matched"] is True
    assert response["configVersion"] != everything["configVersion"]  # a new threshold: cached answers are stale
    nothing = service_for(index, config=RetrievalConfig(min_answer_score=1.0))
    monkeypatch.setattr(wiring, "retrieve_service", lambda: nothing)
    declined = invoke({"tenantId": "acme", "query": "how do I return an item for a refund?", "k": 3})
    assert declined["passages"] == [] and declined["matched"] is False and declined["bestScore"] == best


def test_the_knowledge_version_changes_with_the_knowledge(index: LocalHybridIndex) -> None:
    before = invoke({"tenantId": "acme", "query": "refund"})["knowledgeVersion"]
    index.index("acme", [Document(id="new", title="New", text="Something new.")])
    after = invoke({"tenantId": "acme", "query": "refund"})["knowledgeVersion"]
    index.delete_document("acme", "new")
    deleted = invoke({"tenantId": "acme", "query": "refund"})["knowledgeVersion"]
    assert len({before, after, deleted}) == 3


def test_stored_tenant_configs_are_read_from_the_tenant_and_cached_for_the_ttl() -> None:
    store = InMemoryStateStore()
    config = TenantConfig(retrieval=RetrievalConfig(min_answer_score=0.61, keyword_weight=0.3))
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0, config=config))
    now = [100.0]
    configs = StoredTenantConfigs(TenantConfigCache(store.tenant_config, ttl_seconds=30, clock=lambda: now[0]))
    assert configs.retrieval_config("acme").min_answer_score == 0.61
    changed = TenantConfig(retrieval=RetrievalConfig(min_answer_score=0.7))
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0, config=changed))
    now[0] += 10
    assert configs.retrieval_config("acme").min_answer_score == 0.61  # still cached
    now[0] += 25
    assert configs.retrieval_config("acme").min_answer_score == 0.7  # re-read after the TTL
    assert configs.retrieval_config("nobody") == RetrievalConfig()


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"query": "refund"}, "tenantId"),
        ({"tenantId": "acme"}, "query"),
        ({"tenantId": "acme", "query": "   "}, "query"),
        ({"tenantId": "../etc", "query": "refund"}, "tenantId"),
        ({"tenantId": "acme", "query": "refund", "k": 0}, "k"),
        ({"tenantId": "acme", "query": "refund", "k": 500}, "k"),
        ({"tenantId": "acme", "query": "refund", "k": "many"}, "k"),
        ({"tenantId": "acme", "query": "x" * 9000}, "query"),
        ({"tenantId": 7, "query": "refund"}, "tenantId"),
        (["acme", "refund"], "JSON object"),
        ("acme refund", "JSON object"),
        (None, "JSON object"),
    ],
)
def test_bad_input_is_a_clear_error_not_a_stack_trace(index: LocalHybridIndex, event: Any, reason: str) -> None:
    response = invoke(event)
    assert set(response) == {"error"}
    assert response["error"]["code"] == "bad_request"
    assert reason in response["error"]["message"]
    assert "Traceback" not in response["error"]["message"]


def test_the_error_message_does_not_echo_the_input(index: LocalHybridIndex) -> None:
    response = invoke({"tenantId": "acme", "query": "secret" * 2000})
    assert "secret" not in response["error"]["message"]


class ExplodingIndex(KnowledgeIndex):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def index(self, tenant_id: str, documents: list[Document]) -> IndexResult:
        raise self.error

    def search_hits(self, tenant_id: str, query: str, k: int, *, keyword_weight: float | None = None) -> SearchHits:
        raise self.error

    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        raise self.error

    def documents(self, tenant_id: str) -> list[DocumentSummary]:
        raise self.error

    def version(self, tenant_id: str) -> str:
        raise self.error


def test_unexpected_failures_become_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "retrieve_service", lambda: service_for(ExplodingIndex(RuntimeError("boom")), 4))
    response = invoke({"tenantId": "acme", "query": "refund"})
    assert response["error"]["code"] == "internal_error"
    assert "boom" not in response["error"]["message"]


def test_typed_errors_keep_their_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wiring, "retrieve_service", lambda: service_for(ExplodingIndex(Forbidden("no access")), 4))
    assert invoke({"tenantId": "acme", "query": "refund"}) == {"error": {"code": "forbidden", "message": "no access"}}


def test_the_handler_takes_its_service_as_an_argument(index: LocalHybridIndex) -> None:
    """A test (or another entry point) passes the use case; nothing is built from settings."""
    response = retrieve.handler(
        {"tenantId": "acme", "query": "refund"}, lambda_context("kefu-retrieve"), service=service_for(index, 1)
    )

    assert len(response["passages"]) == 1 and response["matched"] in (True, False)


def test_request_model_accepts_camel_and_snake_case() -> None:
    camel = RetrieveRequest.model_validate({"tenantId": "acme", "query": " refund ", "k": 3})
    snake = RetrieveRequest.model_validate({"tenant_id": "acme", "query": "refund", "k": 3})
    assert camel == snake
    assert camel.query == "refund"


@pytest.fixture
def settings_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("KEFU_KNOWLEDGE_BACKEND", "local")
    monkeypatch.setenv("KEFU_KNOWLEDGE_DIR", str(tmp_path))
    monkeypatch.setenv("KEFU_RETRIEVE_TOP_K", "3")
    wiring.forget_adapters()
    yield tmp_path
    wiring.forget_adapters()


def test_the_handler_builds_its_index_from_settings(settings_from_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The tenant's settings come from the state store: an in-memory one here (no network in unit tests).
    monkeypatch.setattr(wiring, "state_store", lambda: InMemoryStateStore())
    # Written by "the admin API" (another index object on the same directory), read by the handler.
    from shared.knowledge.use_embedder import shared_embedder

    LocalHybridIndex(settings_from_env, shared_embedder()).index("acme", DOCS)
    response = invoke({"tenantId": "acme", "query": "how long does standard delivery take?"})
    # The deployment threshold (the tenant has none) keeps only the passages that answer.
    assert response["threshold"] == get_settings().min_answer_score
    assert response["passages"][0]["documentId"] == "shipping"
    assert all(p["score"] >= response["threshold"] for p in response["passages"])
