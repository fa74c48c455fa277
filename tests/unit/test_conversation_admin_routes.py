"""The admin API's transcript route in-process (FastAPI's TestClient, no sockets): token usage and
latency per answer and per conversation."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.state.records import AnswerUsage, Citation, Conversation, StoredMessage, Tenant, answer_id_for
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore

URL = "/v1/tenants/acme/conversations/c_1/messages"


def message(message_id: str, role: str, text: str, usage: AnswerUsage | None = None) -> StoredMessage:
    return StoredMessage(
        conversation_id="c_1",
        message_id=message_id,
        tenant_id="acme",
        role=role,  # type: ignore[arg-type]
        text=text,
        created_at=int(message_id[:13]),
        citations=[Citation(document_id="returns", title="Returns", snippet="30 days")] if role == "bot" else [],
        usage=usage,
    )


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    store.put_tenant(Tenant(tenant_id="other", name="Other", widget_key="wk2", created_at=0))
    store.put_conversation(
        Conversation(conversation_id="c_1", tenant_id="acme", visitor_id="v", created_at=1, updated_at=1)
    )
    fresh = AnswerUsage(
        source="model",
        provider="openai",
        model="qwen",
        input_tokens=800,
        output_tokens=60,
        first_token_ms=40,
        total_ms=900,
    )
    reused = AnswerUsage(source="cache", provider="openai", model="", first_token_ms=12, total_ms=80)
    for question_id, answer_usage in (("0000000000001-aaaa", fresh), ("0000000000003-bbbb", reused)):
        store.add_message(message(question_id, "visitor", "Can I return it?"))
        store.add_answer(message(answer_id_for(question_id), "bot", "Within 30 days.", answer_usage))
    return store


@pytest.fixture
def client(store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with admin_client(store, monkeypatch) as test_client:
        yield test_client


def test_each_answer_shows_its_tokens_model_and_latency(client: TestClient) -> None:
    transcript = client.get(URL).json()
    question, answer, _, cached = transcript["messages"]
    assert question["role"] == "visitor" and question["usage"] is None
    assert answer["usage"] == {
        "source": "model",
        "provider": "openai",
        "model": "qwen",
        "inputTokens": 800,
        "outputTokens": 60,
        "firstTokenMs": 40,
        "totalMs": 900,
    }
    assert answer["citations"] == [{"documentId": "returns", "title": "Returns", "snippet": "30 days", "url": None}]
    assert cached["usage"]["source"] == "cache" and cached["usage"]["inputTokens"] is None


def test_the_conversation_totals_are_what_it_cost(client: TestClient) -> None:
    assert client.get(URL).json()["usage"] == {"answers": 2, "modelAnswers": 1, "inputTokens": 800, "outputTokens": 60}


def test_another_tenants_conversation_is_not_found(client: TestClient) -> None:
    response = client.get("/v1/tenants/other/conversations/c_1/messages")
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
