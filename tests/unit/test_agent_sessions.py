"""Rotating an agent's key, or disabling the agent, logs out every console open with the old key:
the connection is forgotten (its next frame is refused) and closed through @connections."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.admin import deps
from shared.chat.connections import open_connection
from shared.chat.intake import Intake
from shared.state.records import Connection, Tenant
from tests.unit.admin_support import admin_client
from tests.unit.fakes import FakePush, FakeQueue, InMemoryContextCache, InMemoryStateStore

BASE = "/v1/tenants/acme/agents"


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk", created_at=0))
    return store


@pytest.fixture
def push() -> FakePush:
    return FakePush()


@pytest.fixture
def client(store: InMemoryStateStore, push: FakePush, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    pushes: dict = {deps._connection_push: lambda: (lambda connection: push)}
    with admin_client(store, monkeypatch, overrides=pushes) as test_client:
        yield test_client


def _log_in(store: InMemoryStateStore, key: str, connection_id: str) -> Connection:
    return open_connection(
        store,
        connection_id=connection_id,
        query={"role": "agent"},
        connected_at=1000,
        domain_name="example.com",
        stage="chat",
        protocols=f"kefu.v1, kefu.key.{key}",
    )


def _agent_frame(store: InMemoryStateStore, push: FakePush, connection_id: str) -> dict:
    intake = Intake(
        store=store,
        cache=InMemoryContextCache(),
        queue=FakeQueue(),
        push=push,
        callback_url="https://d/s",
        max_message_chars=100,
    )
    intake.handle(connection_id, '{"action": "agentSync"}')
    return [frame for to, frame in push.frames if to == connection_id][-1]


@pytest.mark.parametrize("how", ["rotate", "disable"])
def test_the_agents_open_consoles_are_closed_and_colleagues_stay(
    client: TestClient, store: InMemoryStateStore, push: FakePush, how: str
) -> None:
    alice = client.post(BASE, json={"name": "Alice"}).json()
    bob = client.post(BASE, json={"name": "Bob"}).json()
    _log_in(store, alice["agentKey"], "alice-tab-1")
    _log_in(store, alice["agentKey"], "alice-tab-2")
    _log_in(store, bob["agentKey"], "bob-tab")
    assert _agent_frame(store, push, "alice-tab-1")["type"] == "agent.state"

    if how == "rotate":
        response = client.post(f"{BASE}/{alice['agentId']}/key")
    else:
        response = client.patch(f"{BASE}/{alice['agentId']}", json={"disabled": True})
    assert response.status_code == 200

    assert push.gone == {"alice-tab-1", "alice-tab-2"}
    reason = "key_rotated" if how == "rotate" else "disabled"
    told = [(to, f) for to, f in push.frames if f["type"] == "session.ended"]
    assert told == [(tab, {"type": "session.ended", "reason": reason}) for tab in ("alice-tab-1", "alice-tab-2")]
    assert {c.connection_id for c in store.agent_connections("acme")} == {"bob-tab"}
    push.gone.clear()  # even were a socket still open (its close failed), its frames are refused
    refused = _agent_frame(store, push, "alice-tab-1")
    assert (refused["type"], refused["code"]) == ("error", "bad_request")
    assert _agent_frame(store, push, "bob-tab")["type"] == "agent.state"
