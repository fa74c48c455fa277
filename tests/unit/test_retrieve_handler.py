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
from shared.knowledge.base import Document, IndexResult, KnowledgeIndex, Passage
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.retrieval import RetrieveRequest, RetrieveService
from shared.settings import get_settings
from tests.events import lambda_context
from tests.unit.test_knowledge_local_index import DOCS, FakeEmbedder


@pytest.fixture
def index(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalHybridIndex:
    index = LocalHybridIndex(tmp_path, FakeEmbedder())
    index.index("acme", DOCS)
    monkeypatch.setattr(retrieve, "_service", lambda: RetrieveService(index, default_k=2))
    return index


def invoke(event: Any) -> dict[str, Any]:
    response = retrieve.handler(event, lambda_context("kefu-retrieve"))
    json.dumps(response)  # what Lambda returns must be JSON
    return response


def test_returns_passages_in_the_wire_format(index: LocalHybridIndex) -> None:
    response = invoke({"tenantId": "acme", "query": "how do I return an item for a refund?", "k": 3})
    passages = response["passages"]
    assert len(passages) == 3
    assert set(passages[0]) == {"documentId", "title", "text", "url", "score"}
    assert passages[0]["documentId"] == "returns"
    assert passages[0]["url"] == "https://s.example/r"
    assert passages[0]["score"] >= passages[1]["score"] >= passages[2]["score"]


def test_k_defaults_to_the_deployment_setting(index: LocalHybridIndex) -> None:
    assert len(invoke({"tenantId": "acme", "query": "refund"})["passages"]) == 2


def test_unknown_tenant_has_no_passages(index: LocalHybridIndex) -> None:
    assert invoke({"tenantId": "nobody", "query": "refund"}) == {"passages": []}


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

    def search(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        raise self.error

    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        raise self.error


def test_unexpected_failures_become_an_internal_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieve, "_service", lambda: RetrieveService(ExplodingIndex(RuntimeError("boom")), 4))
    response = invoke({"tenantId": "acme", "query": "refund"})
    assert response["error"]["code"] == "internal_error"
    assert "boom" not in response["error"]["message"]


def test_typed_errors_keep_their_code(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(retrieve, "_service", lambda: RetrieveService(ExplodingIndex(Forbidden("no access")), 4))
    assert invoke({"tenantId": "acme", "query": "refund"}) == {"error": {"code": "forbidden", "message": "no access"}}


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
    for cached in (get_settings, wiring.knowledge_index, retrieve._service):
        cached.cache_clear()
    yield tmp_path
    for cached in (get_settings, wiring.knowledge_index, retrieve._service):
        cached.cache_clear()


def test_the_handler_builds_its_index_from_settings(settings_from_env: Path) -> None:
    # Written by "the admin API" (another index object on the same directory), read by the handler.
    from shared.knowledge.embedder import shared_embedder

    LocalHybridIndex(settings_from_env, shared_embedder()).index("acme", DOCS)
    response = invoke({"tenantId": "acme", "query": "how long does standard delivery take?"})
    assert len(response["passages"]) == 3
    assert response["passages"][0]["documentId"] == "shipping"
