import pytest

from shared.chat.connections import Admission, close_connection, open_connection, refused_handshake
from shared.chat.identity import VisitorTokens
from shared.chat.rate_limits import ChatLimits, InMemoryRateLimiter, Limit
from shared.errors import BadRequest, Forbidden, Throttled, Unauthorized
from shared.state.records import Tenant
from tests.unit.fakes import FakePush, InMemoryStateStore


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk_right", created_at=1))
    return store


TOKENS = VisitorTokens(b"unit-test-visitor-token-secret")


def admission(
    store: InMemoryStateStore, limiter: InMemoryRateLimiter | None = None, limits: ChatLimits | None = None
) -> Admission:
    """The connect function's use case on in-memory fakes (what the handler gets in place of wiring's)."""
    push = FakePush()
    return Admission(
        store=store,
        tokens=lambda: TOKENS,
        limiter=limiter,
        limits=limits or ChatLimits(),
        push_for=lambda url: push,
        callback_url_of=lambda domain, stage: f"https://{domain}/{stage}",
    )


def connect(store: InMemoryStateStore, *, origin: str | None = None, **query: str):  # type: ignore[no-untyped-def]
    """A handshake; an agent's ``key`` goes in the subprotocol header, as the console sends it."""
    agent_key = query.pop("key") if query.get("role") == "agent" and "key" in query else None
    return open_connection(
        store,
        connection_id="abc=",
        query=query,
        connected_at=1000,
        domain_name="example.com",
        stage="prod",
        tokens=TOKENS,
        protocols=f"kefu.v1, kefu.key.{agent_key}" if agent_key is not None else None,
        origin=origin,
    )


def test_right_key_stores_the_connection(store: InMemoryStateStore) -> None:
    token = TOKENS.issue("t_1", "visitor-123")
    connection = connect(store, tenant="t_1", key="wk_right", visitor="visitor-123", token=token)
    assert store.get_connection("abc=") == connection
    assert connection.visitor_id == "visitor-123"
    assert connection.conversation_id is None


def test_visitor_id_is_made_when_absent(store: InMemoryStateStore) -> None:
    assert connect(store, tenant="t_1", key="wk_right").visitor_id.startswith("v_")


@pytest.mark.parametrize("query", [{}, {"tenant": "t_1"}, {"key": "wk_right"}])
def test_missing_credentials_are_unauthorized(store: InMemoryStateStore, query: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        connect(store, **query)
    assert store.connections == {}


@pytest.mark.parametrize("query", [{"tenant": "t_1", "key": "wk_wrong"}, {"tenant": "t_none", "key": "wk_right"}])
def test_wrong_key_or_tenant_is_forbidden(store: InMemoryStateStore, query: dict[str, str]) -> None:
    with pytest.raises(Forbidden):
        connect(store, **query)
    assert store.connections == {}


def test_malformed_visitor_id_is_refused(store: InMemoryStateStore) -> None:
    with pytest.raises(BadRequest):
        connect(store, tenant="t_1", key="wk_right", visitor="<script>")


def _no_push() -> FakePush:
    raise AssertionError("a visitor's disconnect pushes nothing")


def test_disconnect_forgets_the_connection(store: InMemoryStateStore) -> None:
    connection = connect(store, tenant="t_1", key="wk_right")
    assert close_connection(store, "abc=", _no_push) == connection
    assert store.get_connection("abc=") is None
    assert close_connection(store, "abc=", _no_push) is None  # a repeated $disconnect


# --- agents and page details ---


def _agent(store: InMemoryStateStore, *, disabled: bool = False, tenant: str = "t_1") -> str:
    from shared.handoff.agents import new_agent_key
    from shared.state.records import Agent

    key, key_hash = new_agent_key("a_1")
    store.put_agent(
        Agent(agent_id="a_1", tenant_id=tenant, name="Alice", key_hash=key_hash, created_at=1, disabled=disabled)
    )
    return key


def test_agent_with_their_key_connects_as_an_agent(store: InMemoryStateStore) -> None:
    key = _agent(store)
    connection = connect(store, role="agent", key=key)
    assert (connection.role, connection.agent_id, connection.tenant_id) == ("agent", "a_1", "t_1")
    assert store.agent_connections("t_1") == [connection]


@pytest.mark.parametrize("mutate", ["wrong-secret", "unknown-agent", "no-dot", "widget-key", "other-tenant"])
def test_wrong_agent_credentials_are_forbidden(store: InMemoryStateStore, mutate: str) -> None:
    key = _agent(store)
    query = {
        "wrong-secret": {"role": "agent", "key": key + "x"},
        "unknown-agent": {"role": "agent", "key": "a_9." + key.partition(".")[2]},
        "no-dot": {"role": "agent", "key": "a_1"},
        "widget-key": {"role": "agent", "key": "wk_right", "tenant": "t_1"},
        "other-tenant": {"role": "agent", "key": key, "tenant": "t_2"},
    }[mutate]
    with pytest.raises(Forbidden):
        connect(store, **query)
    assert store.connections == {}


def test_disabled_agent_cannot_connect_and_missing_key_is_unauthorized(store: InMemoryStateStore) -> None:
    key = _agent(store, disabled=True)
    with pytest.raises(Forbidden):
        connect(store, role="agent", key=key)
    with pytest.raises(Unauthorized):
        connect(store, role="agent")


def test_unknown_role_is_a_bad_request(store: InMemoryStateStore) -> None:
    with pytest.raises(BadRequest, match="role"):
        connect(store, role="admin", tenant="t_1", key="wk_right")


def test_page_and_language_are_kept_and_bad_values_dropped(store: InMemoryStateStore) -> None:
    connection = connect(store, tenant="t_1", key="wk_right", page="https://shop.example/" + "x" * 900, lang="zh-CN")
    assert connection.page is not None and len(connection.page) == 500 and connection.language == "zh-CN"
    odd = connect(store, tenant="t_1", key="wk_right", lang="<script>")
    assert odd.language is None and odd.page is None


def test_an_agents_last_tab_closing_tells_the_colleagues(store: InMemoryStateStore) -> None:
    from shared.handoff.agents import new_agent_key
    from shared.state.records import Agent

    _agent(store)
    colleague_key, colleague_hash = new_agent_key("a_2")
    store.put_agent(Agent(agent_id="a_2", tenant_id="t_1", name="Bob", key_hash=colleague_hash, created_at=2))
    connect(store, role="agent", key=_agent(store))
    open_connection(
        store,
        connection_id="bob=",
        query={"role": "agent"},
        protocols=f"kefu.v1, kefu.key.{colleague_key}",
        connected_at=1000,
        domain_name="example.com",
        stage="prod",
        tokens=TOKENS,
    )
    push = FakePush()

    close_connection(store, "abc=", lambda: push)

    assert [(c, f["type"], f["agent"]["presence"]) for c, f in push.frames] == [("bob=", "presence", "offline")]


def test_an_agent_key_comes_in_the_subprotocol_header_and_only_kefu_v1_is_answered(
    store: InMemoryStateStore,
) -> None:
    from shared.chat.connections import accepted_protocol

    key = _agent(store)
    header = f"kefu.v1, kefu.key.{key}"
    connection = open_connection(
        store,
        connection_id="abc=",
        query={"role": "agent"},
        connected_at=1000,
        domain_name="example.com",
        stage="prod",
        tokens=TOKENS,
        protocols=header,
    )
    assert (connection.role, connection.agent_id) == ("agent", "a_1")
    assert accepted_protocol(header) == "kefu.v1"  # the key is never echoed back
    assert accepted_protocol("chat, superchat") is None and accepted_protocol(None) is None
    with pytest.raises(Forbidden):
        open_connection(
            store,
            connection_id="abd=",
            query={"role": "agent"},
            connected_at=1000,
            domain_name="example.com",
            stage="prod",
            tokens=TOKENS,
            protocols=f"kefu.v1, kefu.key.{key}x",
        )


def test_the_connect_handler_echoes_the_subprotocol_for_an_agent(
    store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.connect import handler as connect_handler
    from tests import events

    key = _agent(store)
    doors = admission(store, InMemoryRateLimiter())
    event = events.connect_event({"role": "agent"}, headers=[("Sec-WebSocket-Protocol", f"kefu.v1, kefu.key.{key}")])
    response = connect_handler.handler(event, events.lambda_context(), admission=doors)
    assert response == {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": "kefu.v1"}}
    refused = connect_handler.handler(events.connect_event({"role": "agent"}), events.lambda_context(), admission=doors)
    assert refused["statusCode"] == 401 and "kefu.key." in refused["body"]


def test_the_page_is_kept_without_its_query_and_fragment(store: InMemoryStateStore) -> None:
    page = "https://shop.example/checkout/pay?token=s3cret&email=a%40b.c#card"
    connection = connect(store, tenant="t_1", key="wk_right", page=page)
    assert connection.page == "https://shop.example/checkout/pay"


def test_the_callers_address_is_kept_for_visitors(store: InMemoryStateStore) -> None:
    connection = open_connection(
        store,
        connection_id="ip=",
        query={"tenant": "t_1", "key": "wk_right"},
        connected_at=1000,
        domain_name="example.com",
        stage="prod",
        tokens=TOKENS,
        source_ip="203.0.113.9",
    )
    assert store.get_connection("ip=").source_ip == connection.source_ip == "203.0.113.9"  # type: ignore[union-attr]


def test_new_connections_from_one_address_are_limited_before_the_key_is_checked(
    store: InMemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from functions.connect import handler as connect_handler
    from tests import events

    limiter = InMemoryRateLimiter()
    limits = ChatLimits(address_connections=Limit("new connections from this network address", 3, 60))
    doors = admission(store, limiter, limits)
    query = {"tenant": "t_1", "key": "wk_right"}

    def open_from(address: str) -> dict:
        return connect_handler.handler(
            events.connect_event(query, conn=events.connection(source_ip=address)),
            events.lambda_context(),
            admission=doors,
        )

    assert [open_from("203.0.113.9")["statusCode"] for _ in range(3)] == [200, 200, 200]
    refused = open_from("203.0.113.9")
    assert refused["statusCode"] == 429 and "3 per minute" in refused["body"]
    assert len(store.connections) == 3  # the refused handshake stored nothing
    assert open_from("198.51.100.7")["statusCode"] == 200  # another address is not affected


def test_an_agent_key_in_the_url_is_refused_even_when_right(store: InMemoryStateStore) -> None:
    key = _agent(store)
    with pytest.raises(Unauthorized, match="subprotocol"):
        open_connection(
            store,
            connection_id="url=",
            query={"role": "agent", "key": key},
            connected_at=1000,
            domain_name="example.com",
            stage="prod",
            tokens=TOKENS,
        )
    assert store.connections == {}


def test_a_permanent_refusal_is_told_to_clients_that_ask_for_it(store: InMemoryStateStore) -> None:
    with pytest.raises(Forbidden) as refused:
        connect(store, tenant="t_1", key="wk_wrong")
    # A browser cannot read a refused handshake's status: a client offering kefu.refused gets a
    # handshake that names the refusal (and nothing is stored, so the socket can do nothing).
    assert refused_handshake(refused.value, "kefu.v1, kefu.refused") == {
        "statusCode": 200,
        "headers": {"Sec-WebSocket-Protocol": "kefu.refused"},
    }
    assert store.get_connection("abc=") is None
    assert refused_handshake(refused.value, "kefu.v1") == {"statusCode": 403, "body": refused.value.message}
    assert refused_handshake(Unauthorized("no key"), "kefu.refused")["statusCode"] == 200
    # Throttling passes: the client should retry later, so it stays a plain refusal.
    assert refused_handshake(Throttled("slow down"), "kefu.v1, kefu.refused")["statusCode"] == 429
