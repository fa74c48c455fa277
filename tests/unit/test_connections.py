import pytest

from shared.chat.connections import close_connection, open_connection
from shared.errors import BadRequest, Forbidden, Unauthorized
from shared.state.records import Tenant
from tests.unit.fakes import InMemoryStateStore


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk_right", created_at=1))
    return store


def connect(store: InMemoryStateStore, **query: str):  # type: ignore[no-untyped-def]
    return open_connection(
        store, connection_id="abc=", query=query, connected_at=1000, domain_name="example.com", stage="prod"
    )


def test_right_key_stores_the_connection(store: InMemoryStateStore) -> None:
    connection = connect(store, tenant="t_1", key="wk_right", visitor="visitor-123")
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


def test_disconnect_forgets_the_connection(store: InMemoryStateStore) -> None:
    connect(store, tenant="t_1", key="wk_right")
    close_connection(store, "abc=")
    assert store.get_connection("abc=") is None
