"""Fan-out forgets connections that @connections reports gone, but not ones still inside their $connect."""

from shared.handoff.notify import CONNECT_GRACE_MS, Notifier
from shared.state.records import Connection, now_ms
from shared.wire.protocol import TypingFrame
from tests.unit.fakes import FakePush, InMemoryStateStore


def _agent_tab(store: InMemoryStateStore, connection_id: str, connected_at: int) -> None:
    store.put_connection(
        Connection(
            connection_id=connection_id,
            tenant_id="t_1",
            visitor_id="a_1",
            connected_at=connected_at,
            domain_name="d",
            stage="s",
            role="agent",
            agent_id="a_1",
        )
    )


def test_a_gone_connection_is_forgotten_and_the_others_still_get_the_frame() -> None:
    store, push = InMemoryStateStore(), FakePush()
    _agent_tab(store, "stale", connected_at=now_ms() - CONNECT_GRACE_MS - 1_000)
    _agent_tab(store, "live", connected_at=now_ms() - CONNECT_GRACE_MS - 1_000)
    push.gone.add("stale")

    reached = Notifier(store, push).agent(
        "t_1", "a_1", TypingFrame(conversation_id="c_1", sender="visitor", typing=True)
    )

    assert reached == 1 and [c for c, _ in push.frames] == ["live"]
    assert store.get_connection("stale") is None and store.get_connection("live") is not None


def test_a_connection_still_connecting_is_kept_though_a_post_found_it_gone() -> None:
    # API Gateway stores nothing itself: the connect function wrote the record, the handshake has not
    # finished, so @connections answers GoneException. Forgetting it would hide the new tab for good.
    store, push = InMemoryStateStore(), FakePush()
    _agent_tab(store, "new-tab", connected_at=now_ms() - 500)
    push.gone.add("new-tab")

    reached = Notifier(store, push).agent(
        "t_1", "a_1", TypingFrame(conversation_id="c_1", sender="visitor", typing=True)
    )

    assert reached == 0
    assert store.get_connection("new-tab") is not None
