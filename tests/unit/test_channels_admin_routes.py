"""The tenant-facing channel admin API: secrets go in and never come out; channels are created with
secret names that must exist, listed, updated, disabled and deleted, each with its webhookUrl."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.admin.routes import channels as channel_routes
from shared.channels.directory import ChannelDirectory
from shared.channels.secrets import SecretStoreUnavailable
from shared.state.records import Tenant
from tests.support.channel_state_fake import FakeChannelState, FakeTenantSecrets
from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore

BASE = "/v1/tenants/t1"


@pytest.fixture
def secrets() -> FakeTenantSecrets:
    return FakeTenantSecrets()


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch, secrets: FakeTenantSecrets) -> Iterator[TestClient]:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="t1", name="Shop", widget_key="wk1", created_at=1))
    directory = ChannelDirectory(FakeChannelState())
    overrides = {channel_routes._directory: lambda: directory, channel_routes._secrets: lambda: secrets}
    env = {"KEFU_CHANNELS_PUBLIC_URL": "https://hooks.example.com/prod"}
    with admin_client(store, monkeypatch, overrides=overrides, env=env) as client:
        yield client


def test_a_secret_is_stored_and_never_returned(client: TestClient, secrets: FakeTenantSecrets) -> None:
    response = client.put(f"{BASE}/secrets/oa-secret", json={"value": "s3cr3t-value"})
    assert response.status_code == 200 and response.json() == {"name": "oa-secret", "stored": True}
    assert "s3cr3t-value" not in response.text
    assert secrets.values[("t1", "oa-secret")] == "s3cr3t-value"
    assert client.put(f"{BASE}/secrets/bad name!", json={"value": "x"}).status_code == 422
    assert client.put(f"{BASE}/secrets/ok", json={"value": ""}).status_code == 422


def test_channel_lifecycle(client: TestClient) -> None:
    client.put(f"{BASE}/secrets/oa-secret", json={"value": "app-secret-value"})
    created = client.post(
        f"{BASE}/channels", json={"kind": "wechat_oa", "appId": "wx1", "token": "tok123", "appSecret": "oa-secret"}
    )
    assert created.status_code == 201, created.text
    channel = created.json()
    channel_id = channel["channelId"]
    assert channel["webhookUrl"] == f"https://hooks.example.com/prod/channels/{channel_id}"
    assert channel["fields"]["appSecret"] == "oa-secret" and "app-secret-value" not in created.text
    assert channel["fields"]["apiBaseUrl"] == "https://api.weixin.qq.com/"

    assert [c["channelId"] for c in client.get(f"{BASE}/channels").json()] == [channel_id]
    disabled = client.patch(f"{BASE}/channels/{channel_id}", json={"enabled": False, "token": "newtok"})
    assert disabled.status_code == 200 and disabled.json()["enabled"] is False
    assert disabled.json()["fields"]["token"] == "newtok"
    assert client.patch(f"{BASE}/channels/{channel_id}", json={"kind": "webhook"}).status_code == 400
    assert client.delete(f"{BASE}/channels/{channel_id}").status_code == 204
    assert client.get(f"{BASE}/channels/{channel_id}").status_code == 404
    assert client.get(f"{BASE}/channels").json() == []


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"kind": "telegram"}, "kind must be one of"),
        ({"kind": "wechat_oa", "appId": "wx1", "token": "tok123", "appSecret": "missing"}, "no tenant secret"),
        (
            {"kind": "wechat_oa", "appId": "wx1", "token": "tok123", "appSecret": "s", "appSecretValue": "x"},
            "Extra inputs",
        ),
        ({"kind": "webhook", "deliveryUrl": "ftp://x", "secret": "s"}, "deliveryUrl"),
    ],
)
def test_bad_channels_are_refused_with_a_reason(client: TestClient, body: dict[str, str], reason: str) -> None:
    client.put(f"{BASE}/secrets/s", json={"value": "v"})
    response = client.post(f"{BASE}/channels", json=body)
    assert response.status_code == 400, response.text
    assert reason in response.json()["error"]["message"]
    assert client.get(f"{BASE}/channels").json() == []  # nothing half-stored


def test_a_secrets_manager_failure_is_a_clear_502_and_stores_nothing(
    client: TestClient, secrets: FakeTenantSecrets, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unavailable(*args: object) -> None:
        raise SecretStoreUnavailable("cannot store tenant secret 'oa-secret' (AccessDeniedException)")

    monkeypatch.setattr(secrets, "put", unavailable)
    monkeypatch.setattr(secrets, "exists", unavailable)
    response = client.put(f"{BASE}/secrets/oa-secret", json={"value": "v"})
    assert response.status_code == 502 and "AccessDenied" in response.json()["error"]["message"]
    created = client.post(
        f"{BASE}/channels", json={"kind": "webhook", "deliveryUrl": "https://a.example/", "secret": "s"}
    )
    assert created.status_code == 502
    assert client.get(f"{BASE}/channels").json() == []
