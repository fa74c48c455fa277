"""Who may connect and as whom (issue 11, findings 1 and 3): signed visitor tokens, a tenant's signed
users, allowed origins, widget key rotation and tenant suspension."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from shared.admin import deps
from shared.chat.connections import open_connection
from shared.chat.identity import VisitorTokens, origin_allowed, user_hash
from shared.chat.intake import Intake
from shared.errors import Forbidden
from shared.handoff.views import alias
from shared.state.records import Connection, Tenant, now_ms
from tests.unit.admin_support import admin_client
from tests.unit.fakes import FakePush, FakeQueue, InMemoryContextCache, InMemoryStateStore

TOKENS = VisitorTokens(b"unit-test-visitor-token-secret")


def two_tenants() -> InMemoryStateStore:
    """Tenants acme (widget key wk_acme) and globex (wk_globex)."""
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="acme", name="Acme", widget_key="wk_acme", created_at=0))
    store.put_tenant(Tenant(tenant_id="globex", name="Globex", widget_key="wk_globex", created_at=0))
    return store


@pytest.fixture
def store() -> InMemoryStateStore:
    return two_tenants()


@pytest.fixture
def push() -> FakePush:
    return FakePush()


def visit(
    store: InMemoryStateStore, connection_id: str, *, origin: str | None = None, at: int | None = None, **query: str
) -> Connection:
    return open_connection(
        store,
        connection_id=connection_id,
        query={"tenant": "acme", "key": "wk_acme", **query},
        connected_at=at if at is not None else now_ms(),
        domain_name="d",
        stage="s",
        tokens=TOKENS,
        origin=origin,
    )


def intake(store: InMemoryStateStore, push: FakePush, suspended: bool = False) -> Intake:
    return Intake(
        store=store,
        cache=InMemoryContextCache(),
        queue=FakeQueue(),
        push=push,
        callback_url="https://d/s",
        max_message_chars=1000,
        visitor_tokens=TOKENS,
        tenant_suspended=lambda tenant_id: store.tenants[tenant_id].suspended,
    )


def frames(push: FakePush, connection_id: str, kind: str | None = None) -> list[dict]:
    return [f for to, f in push.frames if to == connection_id and (kind is None or f["type"] == kind)]


# --- visitor tokens ---


def test_a_token_names_its_visitor_only_for_its_tenant_and_only_unaltered() -> None:
    token = TOKENS.issue("acme", "v_1234567890")
    assert TOKENS.visitor_of("acme", token) == "v_1234567890"
    assert TOKENS.visitor_of("globex", token) is None
    assert TOKENS.visitor_of("acme", token.replace("v_1234567890", "v_0987654321")) is None
    assert TOKENS.visitor_of("acme", token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert VisitorTokens(b"another-deployment-secret").visitor_of("acme", token) is None
    assert TOKENS.visitor_of("acme", "") is None and TOKENS.visitor_of("acme", "vt1.x.y") is None


def test_the_session_action_issues_the_token_that_brings_the_visitor_back(
    store: InMemoryStateStore, push: FakePush
) -> None:
    first = visit(store, "tab-1")
    intake(store, push).handle("tab-1", '{"action": "session"}')
    [session] = frames(push, "tab-1", "session")
    assert session["visitorId"] == first.visitor_id and first.visitor_id.startswith("v_")
    again = visit(store, "tab-2", visitor=first.visitor_id, token=session["visitorToken"])
    assert again.visitor_id == first.visitor_id


def test_a_visitor_id_without_its_token_cannot_read_or_write_that_visitors_conversation(
    store: InMemoryStateStore, push: FakePush
) -> None:
    chat = intake(store, push)
    victim = visit(store, "victim")
    chat.handle("victim", '{"action": "sendMessage", "clientMessageId": "m-00000001", "text": "my address is ..."}')
    conversation_id = frames(push, "victim", "ack")[0]["conversationId"]

    # The attacker knows both ids (the finding: that was enough to read and write the conversation).
    attacker = visit(store, "attacker", visitor=victim.visitor_id)
    assert attacker.visitor_id != victim.visitor_id
    chat.handle("attacker", f'{{"action": "history", "conversationId": "{conversation_id}"}}')
    write = {"action": "sendMessage", "clientMessageId": "m-00000002", "text": "hi", "conversationId": conversation_id}
    chat.handle("attacker", json.dumps(write))
    assert frames(push, "attacker", "history") == [] and frames(push, "attacker", "ack") == []
    assert [e["code"] for e in frames(push, "attacker", "error")] == ["not_found", "not_found"]
    assert [m.text for m in store.list_messages(conversation_id) if m.role == "visitor"] == ["my address is ..."]

    # A token made for another tenant, or forged, does not help either.
    other_tenant_token = TOKENS.issue("globex", victim.visitor_id)
    assert visit(store, "attacker-2", token=other_tenant_token).visitor_id != victim.visitor_id


def test_a_tenants_signed_user_is_the_same_visitor_everywhere_and_a_bad_hash_is_a_stranger(
    store: InMemoryStateStore,
) -> None:
    store.tenants["acme"].identity_secret = "is_site-secret"
    good = user_hash("is_site-secret", "customer-42")
    one = visit(store, "phone", userId="customer-42", userHash=good)
    two = visit(store, "laptop", userId="customer-42", userHash=good.upper())
    assert one.visitor_id == two.visitor_id and one.visitor_id.startswith("u_")
    assert "customer-42" not in one.visitor_id
    forged = visit(store, "forger", userId="customer-42", userHash=user_hash("guess", "customer-42"))
    assert forged.visitor_id != one.visitor_id and forged.visitor_id.startswith("v_")
    store.tenants["acme"].identity_secret = None  # the feature off: no hash verifies
    assert visit(store, "later", userId="customer-42", userHash=good).visitor_id != one.visitor_id


def test_aliases_are_short_stable_and_in_the_visitors_language() -> None:
    assert alias("v_abc") == alias("v_abc") and alias("v_abc").startswith("Visitor ")
    assert len(alias("v_abc").split()[1]) == 4
    assert alias("v_abc", "zh-CN").startswith("访客 ")
    assert alias("v_abc") != alias("v_abd")
    assert alias("u_abc").startswith("User ") and alias("u_abc", "zh").startswith("用户 ")


# --- allowed origins ---


def test_origins_empty_list_allows_any_else_exact_or_wildcard_subdomain() -> None:
    assert origin_allowed([], "https://anything.example") and origin_allowed([], None)
    allowed = ["https://shop.example.com", "https://*.acme.cn"]
    assert origin_allowed(allowed, "https://shop.example.com")
    assert origin_allowed(allowed, "HTTPS://Shop.Example.com/")
    assert origin_allowed(allowed, "https://m.acme.cn")
    assert not origin_allowed(allowed, "https://acme.cn.evil.com")
    assert not origin_allowed(allowed, "http://shop.example.com")
    assert not origin_allowed(allowed, "https://shop.example.com.evil.com")
    assert not origin_allowed(allowed, "https://evilacme.cn")
    assert not origin_allowed(allowed, None)


def test_the_handshake_checks_the_origin_against_the_tenants_list(store: InMemoryStateStore) -> None:
    store.tenants["acme"].config.widget.allowed_origins = ["https://shop.example.com"]
    assert visit(store, "ok", origin="https://shop.example.com").tenant_id == "acme"
    with pytest.raises(Forbidden, match="origin"):
        visit(store, "evil", origin="https://evil.example")
    with pytest.raises(Forbidden, match="origin"):
        visit(store, "script")
    assert set(store.connections) == {"ok"}


# --- widget key rotation and suspension (admin API) ---


@pytest.fixture
def client(store: InMemoryStateStore, push: FakePush, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    pushes: dict = {deps._connection_push: lambda: (lambda connection: push)}
    with admin_client(store, monkeypatch, overrides=pushes) as test_client:
        yield test_client


def test_a_rotated_widget_key_is_refused_for_new_connections(store: InMemoryStateStore, client: TestClient) -> None:
    live = visit(store, "live")
    rotated = client.post("/v1/tenants/acme/widget-key").json()
    assert rotated["widgetKey"].startswith("wk_") and rotated["widgetKey"] != "wk_acme"
    with pytest.raises(Forbidden):
        visit(store, "late")
    assert visit(store, "new", key=rotated["widgetKey"]).tenant_id == "acme"
    assert store.get_connection(live.connection_id) is not None  # open chats carry on


def test_a_grace_period_keeps_the_old_key_working_until_it_ends(store: InMemoryStateStore, client: TestClient) -> None:
    response = client.post("/v1/tenants/acme/widget-key", json={"graceSeconds": 60})
    until = response.json()["previousWidgetKeyUntil"]
    assert visit(store, "soon", at=until - 1000).tenant_id == "acme"
    with pytest.raises(Forbidden):
        visit(store, "after", at=until)
    assert client.post("/v1/tenants/acme/widget-key", json={"graceSeconds": -1}).status_code == 422


def test_a_suspended_tenant_is_refused_everywhere_and_its_consoles_closed(
    store: InMemoryStateStore, client: TestClient, push: FakePush
) -> None:
    agent = client.post("/v1/tenants/acme/agents", json={"name": "Alice"}).json()
    protocols = f"kefu.v1, kefu.key.{agent['agentKey']}"

    def console(connection_id: str) -> Connection:
        return open_connection(
            store,
            connection_id=connection_id,
            query={"role": "agent"},
            connected_at=now_ms(),
            domain_name="d",
            stage="s",
            tokens=TOKENS,
            protocols=protocols,
        )

    console("alice-tab")
    visit(store, "visitor-tab")
    other = visit(store, "globex-tab", tenant="globex", key="wk_globex")

    response = client.post("/v1/tenants/acme/suspend", json={"reason": "unpaid invoices"})
    assert response.status_code == 200 and response.json()["suspended"] is True
    assert frames(push, "alice-tab") == [{"type": "session.ended", "reason": "suspended"}]
    assert "alice-tab" in push.gone and store.get_connection("alice-tab") is None

    with pytest.raises(Forbidden, match="suspended"):
        visit(store, "new-visitor")
    with pytest.raises(Forbidden, match="suspended"):
        console("alice-tab-2")
    # A visitor whose chat was open: its next frame ends it, with the reason.
    chat = intake(store, push)
    chat.handle("visitor-tab", '{"action": "sendMessage", "clientMessageId": "m-00000001", "text": "hello"}')
    assert frames(push, "visitor-tab") == [{"type": "session.ended", "reason": "suspended"}]
    assert store.get_connection("visitor-tab") is None and "visitor-tab" in push.gone
    # Other tenants are untouched.
    chat.handle(other.connection_id, '{"action": "session"}')
    assert frames(push, other.connection_id, "session")

    assert client.post("/v1/tenants/acme/resume").json()["suspended"] is False
    assert visit(store, "back").tenant_id == "acme"
    assert console("alice-tab-3").role == "agent"


@pytest.fixture
def deployed_key(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The deployment's signing key as AWS holds it: an SSM SecureString (moto in process, no network)."""
    from moto import mock_aws

    from shared import wiring
    from shared.settings import get_settings

    monkeypatch.delenv("KEFU_VISITOR_TOKEN_SECRET", raising=False)
    monkeypatch.setenv("KEFU_VISITOR_TOKEN_PARAMETER", "/kefu/dev/visitor-token-key")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for variable in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(variable, "testing")
    get_settings.cache_clear()
    wiring.visitor_tokens.cache_clear()
    with mock_aws():
        import boto3

        key = "deployed-visitor-token-key-" + "x" * 40
        boto3.client("ssm").put_parameter(Name="/kefu/dev/visitor-token-key", Type="SecureString", Value=key)
        yield key
    get_settings.cache_clear()
    wiring.visitor_tokens.cache_clear()


def test_functions_sign_with_the_key_in_parameter_store(deployed_key: str) -> None:
    from shared import wiring

    token = VisitorTokens(deployed_key.encode()).issue("acme", "v_1234567890")
    assert wiring.visitor_tokens().visitor_of("acme", token) == "v_1234567890"
    assert TOKENS.visitor_of("acme", wiring.visitor_tokens().issue("acme", "v_1234567890")) is None
