"""Limits on a public widget key (issue 11): a flood from one connection, visitor or tenant is refused
with ``rate_limited`` before anything is stored or queued, and other visitors are unaffected."""

from __future__ import annotations

import json

import pytest

from shared.chat.intake import Intake
from shared.chat.rate_limits import Charge, ChatLimits, InMemoryRateLimiter, Limit, RateLimited
from shared.state.records import Agent, Connection, Tenant
from tests.unit.fakes import FakePush, FakeQueue, InMemoryContextCache, InMemoryStateStore


class FixedClock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    for tenant in ("t_1", "t_2"):
        store.put_tenant(Tenant(tenant_id=tenant, name=tenant, widget_key="wk", created_at=1))
    for cid, tenant, visitor in (
        ("conn-a", "t_1", "visitor-aaa"),
        ("conn-a2", "t_1", "visitor-aaa"),
        ("conn-b", "t_1", "visitor-bbb"),
        ("conn-c", "t_2", "visitor-ccc"),
    ):
        store.put_connection(
            Connection(
                connection_id=cid, tenant_id=tenant, visitor_id=visitor, connected_at=1, domain_name="d", stage="s"
            )
        )
    return store


def make_intake(store: InMemoryStateStore, limits: ChatLimits) -> tuple[Intake, FakePush, FakeQueue]:
    push, queue = FakePush(), FakeQueue()
    intake = Intake(
        store=store,
        cache=InMemoryContextCache(),
        queue=queue,
        push=push,
        callback_url="https://d/s",
        max_message_chars=8192,
        limiter=InMemoryRateLimiter(),
        limits=limits,
    )
    return intake, push, queue


def send(n: int, text: str = "Where is my order?") -> str:
    return json.dumps({"action": "sendMessage", "clientMessageId": f"cmid-{n:06d}", "text": text})


def errors(push: FakePush, connection_id: str) -> list[dict]:
    return [f for to, f in push.frames if to == connection_id and f["type"] == "error"]


def test_a_visitor_over_their_message_limit_is_refused_before_anything_is_stored(store: InMemoryStateStore) -> None:
    limits = ChatLimits(visitor_questions=Limit("messages from this visitor", 3, 60))
    intake, push, queue = make_intake(store, limits)
    for n in range(3):
        intake.handle("conn-a", send(n))
    stored = len(store.messages)
    intake.handle("conn-a2", send(99))  # another tab of the same visitor shares the budget
    [refused] = errors(push, "conn-a2")
    assert refused["code"] == "rate_limited" and refused["clientMessageId"] == "cmid-000099"
    assert "3 per minute" in refused["message"] and 0 < refused["retryAfterMs"] <= 60_000
    assert len(store.messages) == stored and len(queue.jobs) == 3
    intake.handle("conn-b", send(100))  # another visitor is not affected
    assert not errors(push, "conn-b") and len(queue.jobs) == 4


def test_a_flood_from_one_connection_is_cut_at_the_frame_limit(store: InMemoryStateStore) -> None:
    limits = ChatLimits(connection_frames=Limit("frames on this connection", 10, 10))
    intake, push, queue = make_intake(store, limits)
    for n in range(500):
        intake.handle("conn-a", send(n))
    assert len(queue.jobs) == 10 and len(errors(push, "conn-a")) == 490
    assert {e["code"] for e in errors(push, "conn-a")} == {"rate_limited"}


def test_long_messages_spend_the_character_budget(store: InMemoryStateStore) -> None:
    limits = ChatLimits(visitor_characters=Limit("characters of messages from this visitor", 20_000, 60))
    intake, push, queue = make_intake(store, limits)
    for n in range(3):
        intake.handle("conn-a", send(n, "x" * 8000))
    assert len(queue.jobs) == 2 and "characters" in errors(push, "conn-a")[0]["message"]


def test_one_tenants_flood_leaves_other_tenants_alone(store: InMemoryStateStore) -> None:
    limits = ChatLimits(tenant_questions=Limit("messages to this tenant", 5, 60))
    intake, push, queue = make_intake(store, limits)
    for n in range(10):
        intake.handle("conn-a" if n % 2 else "conn-b", send(n))
    intake.handle("conn-c", send(50))
    assert len([j for j in queue.jobs if j.tenant_id == "t_1"]) == 5
    assert [j.tenant_id for j in queue.jobs].count("t_2") == 1 and not errors(push, "conn-c")


def test_handoff_requests_have_their_own_limit(store: InMemoryStateStore) -> None:
    limits = ChatLimits(visitor_handoffs=Limit("requests for a person from this visitor", 2, 600))
    intake, push, _ = make_intake(store, limits)
    for _ in range(3):
        intake.handle("conn-a", json.dumps({"action": "requestHuman"}))
    [refused] = errors(push, "conn-a")
    assert refused["code"] == "rate_limited" and "requests for a person" in refused["message"]


def test_windows_turn_and_a_zero_limit_is_off() -> None:
    clock = FixedClock(600.0)
    limiter = InMemoryRateLimiter()
    charge = Charge("visitor:t:v:questions", Limit("messages", 2, 60))
    limiter.spend([charge, charge], clock)
    with pytest.raises(RateLimited) as caught:
        limiter.spend([charge], clock)
    assert caught.value.retry_after_ms == 60_001
    clock.now += 60
    limiter.spend([charge], clock)
    off = Charge("x", Limit("anything", 0, 1))
    for _ in range(100):
        limiter.spend([off], clock)


def test_a_handoff_flood_from_fresh_visitor_ids_is_cut_per_address(store: InMemoryStateStore) -> None:
    # 40 connections from one address, each with a new visitor id, all asking for a person.
    for n in range(40):
        store.put_connection(
            Connection(
                connection_id=f"flood-{n}",
                tenant_id="t_1",
                visitor_id=f"visitor-flood-{n:03d}",
                connected_at=1,
                domain_name="d",
                stage="s",
                source_ip="203.0.113.9",
            )
        )
    store.put_connection(
        Connection(
            connection_id="genuine",
            tenant_id="t_1",
            visitor_id="visitor-genuine",
            connected_at=1,
            domain_name="d",
            stage="s",
            source_ip="198.51.100.7",
        )
    )
    # Someone is on duty (a handoff is only queued when a person can take it).
    store.put_agent(Agent(agent_id="a_1", tenant_id="t_1", name="Alice", key_hash="h", created_at=1, capacity=1))
    store.put_connection(
        Connection(
            connection_id="agent-tab",
            tenant_id="t_1",
            visitor_id="a_1",
            connected_at=1,
            domain_name="d",
            stage="s",
            role="agent",
            agent_id="a_1",
        )
    )
    intake, push, _ = make_intake(store, ChatLimits())
    for n in range(40):
        intake.handle(f"flood-{n}", json.dumps({"action": "requestHuman"}))
    intake.handle("genuine", json.dumps({"action": "requestHuman"}))
    refused = [to for to, f in push.frames if f["type"] == "error" and f["code"] == "rate_limited"]
    assert len(refused) == 30 and "genuine" not in refused
    queued = [c for c in store.conversations.values() if c.status != "bot"]
    assert len(queued) == 11  # ten from the flood's address, and the genuine visitor
