"""The admin API's agent routes in-process (FastAPI's TestClient, no sockets)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.handoff.agents import key_matches
from shared.state.records import Conversation, Tenant
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore

BASE = "/v1/tenants/acme/agents"


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    return store


@pytest.fixture
def client(store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with admin_client(store, monkeypatch) as test_client:
        yield test_client


def test_the_key_is_shown_once_and_stored_only_as_a_hash(client: TestClient, store: InMemoryStateStore) -> None:
    created = client.post(BASE, json={"name": "Alice", "capacity": 3}).json()
    stored = store.agents[created["agentId"]]
    assert created["agentKey"] not in stored.model_dump_json()
    assert key_matches(stored, created["agentKey"]) and stored.capacity == 3
    assert "agentKey" not in client.get(BASE).json()["agents"][0]


def test_an_agent_holding_conversations_cannot_be_disabled_or_deleted(
    client: TestClient, store: InMemoryStateStore
) -> None:
    agent_id = client.post(BASE, json={"name": "Alice"}).json()["agentId"]
    store.put_conversation(
        Conversation(
            conversation_id="c_1",
            tenant_id="acme",
            visitor_id="v",
            created_at=1,
            updated_at=1,
            status="assigned",
            assignee_id=agent_id,
        )
    )
    for response in (client.patch(f"{BASE}/{agent_id}", json={"disabled": True}), client.delete(f"{BASE}/{agent_id}")):
        assert response.status_code == 409 and "transfer or resolve" in response.json()["error"]["message"]
    store.conversations["c_1"].status = "resolved"
    store.conversations["c_1"].assignee_id = None
    assert client.patch(f"{BASE}/{agent_id}", json={"disabled": True, "name": "Al"}).json()["name"] == "Al"
    assert client.delete(f"{BASE}/{agent_id}").status_code == 204


def test_unknown_fields_and_tenants_are_refused(client: TestClient) -> None:
    agent_id = client.post(BASE, json={"name": "Alice"}).json()["agentId"]
    assert client.patch(f"{BASE}/{agent_id}", json={"keyHash": "x"}).status_code == 422
    assert client.post("/v1/tenants/nope/agents", json={"name": "x"}).status_code == 404
