"""Per-tenant admin keys (issue 11, finding 6h): made by the platform key, shown once, stored hashed,
reaching only their own tenant's routes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.admin.keys import hash_key
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore
from tests.unit.test_visitor_identity import two_tenants


@pytest.fixture
def store() -> InMemoryStateStore:
    return two_tenants()


@pytest.fixture
def client(store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    with admin_client(store, monkeypatch) as test_client:
        yield test_client


def as_key(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_a_tenant_key_is_shown_once_and_stored_hashed(client: TestClient, store: InMemoryStateStore) -> None:
    created = client.post("/v1/tenants/acme/admin-keys", json={"name": "ci"})
    assert created.status_code == 201
    key, key_id = created.json()["adminKey"], created.json()["keyId"]
    assert key.startswith("tak.acme.")
    stored = store.tenants["acme"].admin_keys[key_id]
    assert stored.key_hash == hash_key(key) and key not in stored.model_dump_json()
    listed = client.get("/v1/tenants/acme/admin-keys").json()["adminKeys"]
    assert listed == [{"keyId": key_id, "name": "ci", "createdAt": stored.created_at}]


def test_a_tenant_key_reaches_only_its_own_tenant(client: TestClient) -> None:
    key = client.post("/v1/tenants/acme/admin-keys", json={"name": "ops"}).json()["adminKey"]
    own = as_key(key)
    assert client.get("/v1/tenants/acme/config", headers=own).status_code == 200
    assert client.post("/v1/tenants/acme/agents", json={"name": "Alice"}, headers=own).status_code == 201
    assert client.post("/v1/tenants/acme/widget-key", headers=own).status_code == 200
    assert client.get("/v1/tenants/acme/admin-keys", headers=own).status_code == 200

    refused = [
        client.get("/v1/tenants/globex/config", headers=own),
        client.get("/v1/tenants/globex/agents", headers=own),
        client.get("/v1/tenants/globex/conversations/c_1/messages", headers=own),
        client.post("/v1/tenants", json={"name": "Mine"}, headers=own),
        client.get("/v1/dead-letters", headers=own),
        client.post("/v1/tenants/acme/admin-keys", json={"name": "more"}, headers=own),
        client.post("/v1/tenants/acme/suspend", headers=own),
        client.post("/v1/tenants/acme/resume", headers=own),
    ]
    assert [r.status_code for r in refused] == [403] * len(refused)
    assert all(r.json()["error"]["code"] == "forbidden" for r in refused)


def test_a_revoked_or_altered_key_is_refused(client: TestClient) -> None:
    created = client.post("/v1/tenants/acme/admin-keys", json={"name": "old"}).json()
    key = created["adminKey"]
    assert client.get("/v1/tenants/acme/config", headers=as_key(key + "x")).status_code == 401
    # The same secret presented as another tenant's key is not that tenant's key.
    assert client.get("/v1/tenants/globex/config", headers=as_key(key.replace("acme", "globex"))).status_code == 401
    assert client.delete(f"/v1/tenants/acme/admin-keys/{created['keyId']}").status_code == 204
    assert client.get("/v1/tenants/acme/config", headers=as_key(key)).status_code == 401
    assert client.delete(f"/v1/tenants/acme/admin-keys/{created['keyId']}").status_code == 404


def test_a_suspended_tenants_keys_are_refused(client: TestClient) -> None:
    key = client.post("/v1/tenants/acme/admin-keys", json={"name": "ops"}).json()["adminKey"]
    client.post("/v1/tenants/acme/suspend")
    response = client.get("/v1/tenants/acme/config", headers=as_key(key))
    assert response.status_code == 403 and "suspended" in response.json()["error"]["message"]
    assert client.get("/v1/tenants/acme/config").status_code == 200  # the platform still can
