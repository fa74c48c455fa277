"""The DynamoDB state store against moto's server (DynamoDB's wire protocol), and the Redis cache
against a real redis-server that the test stops mid-conversation."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from local.services import RedisServer
from shared.settings import Settings
from shared.state.cache import RedisContextCache
from shared.state.dynamodb import DynamoStateStore
from shared.state.records import (
    AnswerUsage,
    Citation,
    Connection,
    Conversation,
    StoredMessage,
    Tenant,
    answer_id_for,
    new_message_id,
)

pytestmark = pytest.mark.integration


def visitor_message(conversation_id: str, text: str, cmid: str, at: int) -> StoredMessage:
    return StoredMessage(
        conversation_id=conversation_id,
        message_id=new_message_id(at),
        tenant_id="t_1",
        role="visitor",
        text=text,
        created_at=at,
        client_message_id=cmid,
    )


def test_tenants_connections_conversations_round_trip(settings: Settings) -> None:
    store = DynamoStateStore(settings)
    tenant = Tenant(tenant_id="t_1", name="Shop", widget_key="wk_1", created_at=1)
    tenant.config.retrieval.keyword_weight = 0.3
    store.put_tenant(tenant)
    assert store.get_tenant("t_1") == tenant and store.get_tenant("t_2") is None
    assert store.get_tenant("t_1").config.retrieval.keyword_weight == 0.3  # type: ignore[union-attr]

    connection = Connection(
        connection_id="abc=", tenant_id="t_1", visitor_id="v1", connected_at=5, domain_name="d", stage="s"
    )
    store.put_connection(connection)
    store.set_connection_conversation("abc=", "c_1")
    assert store.get_connection("abc=") == connection.model_copy(update={"conversation_id": "c_1"})
    store.delete_connection("abc=", connected_before=5)  # connected at 5: too young to forget
    assert store.get_connection("abc=") is not None
    store.delete_connection("abc=", connected_before=6)
    assert store.get_connection("abc=") is None
    store.delete_connection("abc=", connected_before=6)  # already gone: nothing to do
    store.put_connection(connection)
    store.delete_connection("abc=")
    assert store.get_connection("abc=") is None
    store.set_connection_conversation("abc=", "c_2")  # after a disconnect: no resurrected item
    assert store.get_connection("abc=") is None

    conversation = Conversation(conversation_id="c_1", tenant_id="t_1", visitor_id="v1", created_at=1, updated_at=1)
    store.put_conversation(conversation)
    assert store.get_conversation("c_1") == conversation


def test_a_connection_is_claimed_for_one_new_conversation_only(settings: Settings) -> None:
    store = DynamoStateStore(settings)
    store.put_connection(
        Connection(
            connection_id="race=",
            tenant_id="t_1",
            visitor_id="v1",
            connected_at=5,
            domain_name="d",
            stage="s",
            source_ip="203.0.113.9",
        )
    )
    assert store.get_connection("race=").source_ip == "203.0.113.9"  # type: ignore[union-attr]
    assert store.claim_connection_conversation("race=", "c_first", None)
    assert not store.claim_connection_conversation("race=", "c_second", None)  # lost: it points elsewhere now
    assert store.get_connection("race=").conversation_id == "c_first"  # type: ignore[union-attr]
    assert store.claim_connection_conversation("race=", "c_next", "c_first")  # from what it points at
    assert not store.claim_connection_conversation("gone=", "c_x", None)  # no connection: nothing claimed
    assert store.get_connection("gone=") is None


def test_visitor_message_is_stored_once_per_client_id(settings: Settings) -> None:
    store = DynamoStateStore(settings)
    first = store.add_visitor_message(visitor_message("c_1", "hello", "cmid-1", 1000), "v1")
    again = store.add_visitor_message(visitor_message("c_1", "hello", "cmid-1", 2000), "v1")
    assert again == first
    other_visitor = store.add_visitor_message(visitor_message("c_2", "hello", "cmid-1", 3000), "v2")
    assert other_visitor.message_id != first.message_id
    assert store.list_messages("c_1") == [first]
    assert store.find_by_client_id("t_1", "v1", "cmid-1") == first
    assert store.find_by_client_id("t_1", "v1", "cmid-x") is None


def test_concurrent_resends_store_one_message(settings: Settings) -> None:
    store = DynamoStateStore(settings)
    attempts = [visitor_message("c_1", "same", "cmid-race", 1000 + i) for i in range(6)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(lambda m: store.add_visitor_message(m, "v1"), attempts))
    assert len({r.message_id for r in results}) == 1
    assert len(store.list_messages("c_1")) == 1


def test_answer_is_stored_at_most_once_and_sorts_after_its_question(settings: Settings) -> None:
    store = DynamoStateStore(settings)
    question = store.add_visitor_message(visitor_message("c_1", "q1", "cmid-1", 1000), "v1")
    later = store.add_visitor_message(visitor_message("c_1", "q2", "cmid-2", 1001), "v1")
    answer = StoredMessage(
        conversation_id="c_1",
        message_id=answer_id_for(question.message_id),
        tenant_id="t_1",
        role="bot",
        text="a1",
        created_at=1500,
        citations=[Citation(document_id="d", title="T", snippet="s", url=None)],
        usage=AnswerUsage(
            source="model",
            provider="openai",
            model="qwen",
            input_tokens=812,
            output_tokens=64,
            first_token_ms=41,
            total_ms=930,
        ),
    )
    assert store.add_answer(answer) is True
    assert store.add_answer(answer.model_copy(update={"text": "again"})) is False
    assert [m.text for m in store.list_messages("c_1")] == ["q1", "a1", "q2"]
    assert [m.text for m in store.recent_messages("c_1", 2)] == ["a1", "q2"]
    assert store.get_message("c_1", answer.message_id) == answer  # usage included
    assert store.list_messages("c_1")[0].usage is None  # questions carry none
    assert later.message_id > answer.message_id


def test_redis_cache_degrades_to_none_when_redis_dies(redis_server: RedisServer) -> None:
    cache = RedisContextCache.from_url(redis_server.url, max_messages=3, timeout_seconds=0.2)
    messages = [visitor_message("c_1", f"m{i}", f"cmid-{i}", 1000 + i) for i in range(5)]
    assert cache.recent("c_1") is None
    cache.append(messages[0])  # no list yet: appending would fake a complete history
    assert cache.recent("c_1") is None
    cache.replace("c_1", messages[:2])
    cache.append(messages[2])
    cache.append(messages[3])
    assert [m.text for m in cache.recent("c_1") or []] == ["m1", "m2", "m3"]  # trimmed to 3

    redis_server.stop()
    assert cache.recent("c_1") is None
    cache.append(messages[4])  # swallowed, logged
    cache.replace("c_1", messages)
