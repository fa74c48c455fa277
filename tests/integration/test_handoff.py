"""Handoff rules against DynamoDB's wire protocol (moto's server): conditional ownership changes,
the sparse queue / assignee / agent-connection indexes, no bot answer while people own a conversation
(also for an answer already streaming when the handoff lands), and no message lost or duplicated when
clients resend."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.chat.gate import HandoffGate
from shared.chat.generation import Generator
from shared.chat.intake import Intake
from shared.errors import Conflict
from shared.handoff.agents import new_agent_key
from shared.handoff.notify import Notifier
from shared.handoff.service import Handoff
from shared.knowledge.base import Passage
from shared.knowledge.retrieve_client import Retriever
from shared.model.answer_model import Answer, AnswerModel, Turn
from shared.model.gateway import FixedModelGateway
from shared.settings import Settings
from shared.state.cache import NoCache
from shared.state.dynamodb import DynamoStateStore
from shared.state.records import (
    Agent,
    AgentEdit,
    Connection,
    Conversation,
    StatusChange,
    StoredMessage,
    Tenant,
    answer_id_for,
    new_message_id,
)
from shared.wire.jobs import GenerateJob, GenerationQueue
from shared.wire.push import ClientPush

pytestmark = pytest.mark.integration

PASSAGE = Passage(document_id="ship", title="Shipping", text="2-4 working days.", url="https://x/s", score=0.9)


class RecordingPush(ClientPush):
    """The @connections port, recorded (thread-safe): which frames each connection was sent."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, dict]] = []
        self._lock = threading.Lock()
        self.sent = threading.Condition(self._lock)

    def send(self, connection_id: str, frame: str) -> None:
        with self.sent:
            self.frames.append((connection_id, json.loads(frame)))
            self.sent.notify_all()

    def close(self, connection_id: str) -> None:
        return None

    def of(self, connection_id: str, kind: str | None = None) -> list[dict]:
        with self._lock:
            return [f for c, f in self.frames if c == connection_id and (kind is None or f["type"] == kind)]

    def wait_for(self, connection_id: str, kind: str, timeout: float = 10) -> dict:
        with self.sent:
            ok = self.sent.wait_for(
                lambda: any(c == connection_id and f["type"] == kind for c, f in self.frames), timeout
            )
        assert ok, f"no {kind} for {connection_id}: {self.frames}"
        return self.of(connection_id, kind)[0]


class ListQueue(GenerationQueue):
    def __init__(self) -> None:
        self.jobs: list[GenerateJob] = []

    def enqueue(self, job: GenerateJob) -> None:
        self.jobs.append(job)


class OnePassage(Retriever):
    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        return [PASSAGE]


class PausingModel(AnswerModel):
    """Streams one piece, then waits until the test says go on (a slow model mid-answer)."""

    def __init__(self) -> None:
        self.go_on = threading.Event()
        self.closed = False

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        return Answer(citations=passages)

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        try:
            yield "It usually takes "
            assert self.go_on.wait(10)
            yield from ("2-4 ", "working ", "days.")
        finally:
            self.closed = True


@pytest.fixture
def store(settings: Settings) -> DynamoStateStore:
    store = DynamoStateStore(settings)
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk", created_at=1))
    return store


def add_agent(store: DynamoStateStore, agent_id: str, name: str, *, online: bool = True) -> Agent:
    _, key_hash = new_agent_key(agent_id)
    agent = Agent(agent_id=agent_id, tenant_id="t_1", name=name, key_hash=key_hash, created_at=len(agent_id))
    store.put_agent(agent)
    if online:
        store.put_connection(
            Connection(
                connection_id=f"tab-{agent_id}",
                tenant_id="t_1",
                visitor_id=agent_id,
                connected_at=1,
                domain_name="d",
                stage="s",
                role="agent",
                agent_id=agent_id,
            )
        )
    return agent


def visitor_tab(store: DynamoStateStore, connection_id: str = "v-tab", visitor_id: str = "visitor-aaa") -> None:
    store.put_connection(
        Connection(
            connection_id=connection_id,
            tenant_id="t_1",
            visitor_id=visitor_id,
            connected_at=1,
            domain_name="d",
            stage="s",
            language="en",
        )
    )


def intake(store: DynamoStateStore, push: ClientPush, queue: GenerationQueue | None = None) -> Intake:
    return Intake(
        store=store,
        cache=NoCache(),
        queue=queue or ListQueue(),
        push=push,
        callback_url="https://d/s",
        max_message_chars=500,
    )


def generator_for(
    store: DynamoStateStore, push: RecordingPush, model: AnswerModel, *, recheck_seconds: float = 1.0
) -> Generator:
    """The generate function's logic with the handoff gate, answering from one passage."""
    return Generator(
        store=store,
        cache=NoCache(),
        retriever=OnePassage(),
        models=FixedModelGateway(model, identity="default"),
        push_for=lambda url: push,
        history_turns=5,
        top_k=3,
        flush_ms=0,
        flush_chars=400,
        gate=HandoffGate(store, lambda url: push, recheck_seconds=recheck_seconds),
    )


def test_ownership_changes_are_conditional_and_indexed(store: DynamoStateStore) -> None:
    add_agent(store, "a_1", "Al")
    add_agent(store, "a_2", "Bo")
    conversation = Conversation(conversation_id="c_1", tenant_id="t_1", visitor_id="v", created_at=1, updated_at=1)
    store.put_conversation(conversation)
    queued = store.change_status(conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"})))
    assert queued is not None and queued.status == "queued" and queued.waiting_since
    assert [c.conversation_id for c in store.queued_conversations("t_1")] == ["c_1"]
    # A second handoff from "bot" does not apply: the status already moved on.
    assert store.change_status(conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"}))) is None

    assigned = store.change_status(
        conversation,
        StatusChange(status="assigned", from_statuses=frozenset({"queued"}), assignee_id="a_1", assignee_name="Al"),
    )
    assert assigned is not None and assigned.assignee_name == "Al"
    assert store.queued_conversations("t_1") == []
    assert [c.conversation_id for c in store.assigned_conversations("a_1")] == ["c_1"]
    al = store.get_agent("a_1")
    assert al is not None and al.load == 1 and al.last_assigned_at > 0
    # Only the holder's release applies.
    release = StatusChange(status="resolved", from_statuses=frozenset({"assigned"}), expected_assignee_id="a_2")
    assert store.change_status(conversation, release) is None
    done = store.change_status(
        conversation, StatusChange(status="resolved", from_statuses=frozenset({"assigned"}), expected_assignee_id="a_1")
    )
    assert done is not None and done.assignee_id is None
    assert store.assigned_conversations("a_1") == []
    assert [store.get_agent(a).load for a in ("a_1", "a_2")] == [0, 0]  # type: ignore[union-attr]


def test_automatic_assignments_cannot_exceed_an_agents_capacity_even_at_once(store: DynamoStateStore) -> None:
    add_agent(store, "a_1", "Al")
    conversations = []
    for n in range(6):
        conversation = Conversation(
            conversation_id=f"c_{n}", tenant_id="t_1", visitor_id="v", created_at=1, updated_at=1, status="queued"
        )
        store.put_conversation(conversation)
        conversations.append(conversation)

    def assign(conversation: Conversation) -> bool:
        change = StatusChange(
            status="assigned", from_statuses=frozenset({"queued"}), assignee_id="a_1", assignee_name="Al", capacity=2
        )
        return store.change_status(conversation, change) is not None

    with ThreadPoolExecutor(max_workers=6) as pool:
        assigned = list(pool.map(assign, conversations))

    assert assigned.count(True) == 2
    assert store.get_agent("a_1").load == 2  # type: ignore[union-attr]
    assert len(store.assigned_conversations("a_1")) == 2
    # A person picking a conversation themselves is not bound by the automatic limit.
    accept = StatusChange(status="assigned", from_statuses=frozenset({"queued"}), assignee_id="a_1", assignee_name="Al")
    assert store.change_status(conversations[assigned.index(False)], accept) is not None
    assert store.get_agent("a_1").load == 3  # type: ignore[union-attr]
    # Transfers move the count; profile edits never touch it.
    add_agent(store, "a_2", "Bo")
    [held, *_] = store.assigned_conversations("a_1")
    transfer = StatusChange(
        status="assigned",
        from_statuses=frozenset({"assigned"}),
        expected_assignee_id="a_1",
        assignee_id="a_2",
        assignee_name="Bo",
    )
    assert store.change_status(held, transfer) is not None
    renamed = store.update_agent("a_1", AgentEdit(name="Alan", capacity=5))
    assert renamed is not None and (renamed.name, renamed.capacity, renamed.load) == ("Alan", 5, 2)
    assert store.get_agent("a_2").load == 1  # type: ignore[union-attr]
    assert store.update_agent("a_404", AgentEdit(name="Nobody")) is None


def test_watermarks_streaks_feedback_and_pages(store: DynamoStateStore) -> None:
    store.put_conversation(
        Conversation(conversation_id="c_1", tenant_id="t_1", visitor_id="v", created_at=1, updated_at=1)
    )
    assert store.advance_read("c_1", "visitor", "0000000000005-a")
    assert not store.advance_read("c_1", "visitor", "0000000000004-a")  # never backwards
    assert store.get_conversation("c_1").visitor_read_until == "0000000000005-a"  # type: ignore[union-attr]
    assert [store.record_grounding("c_1", False) for _ in range(3)] == [1, 2, 3]
    assert store.record_grounding("c_1", True) == 0

    roles = ["visitor", "bot", "event", "agent", "note", "visitor"]
    ids = [new_message_id(1000 + i) for i in range(len(roles))]
    for message_id, role in zip(ids, roles, strict=True):
        store.add_message(
            StoredMessage(
                conversation_id="c_1", message_id=message_id, tenant_id="t_1", role=role, text=role, created_at=1
            )  # type: ignore[arg-type]
        )
    assert store.set_feedback("c_1", ids[1], "down") and not store.set_feedback("c_1", ids[0], "down")
    assert store.get_message("c_1", ids[1]).feedback == "down"  # type: ignore[union-attr]
    # The bot's context skips notes and events.
    assert [m.role for m in store.recent_messages("c_1", 3)] == ["bot", "agent", "visitor"]
    newest, more = store.messages_page("c_1", limit=4)
    assert [m.message_id for m in newest] == ids[2:] and more
    older, more = store.messages_page("c_1", before=ids[2], limit=4)
    assert [m.message_id for m in older] == ids[:2] and not more
    after, more = store.messages_page("c_1", after=ids[3], limit=4)
    assert [m.message_id for m in after] == ids[4:] and not more


def test_agents_and_their_connections(store: DynamoStateStore) -> None:
    alice = add_agent(store, "a_1", "Alice")
    add_agent(store, "a_2", "Bob", online=False)
    assert [a.name for a in store.list_agents("t_1")] == ["Alice", "Bob"]
    store.set_agent_away("a_1", True)
    again = store.get_agent("a_1")
    assert again is not None and again.away and again.key_hash == alice.key_hash
    assert [c.agent_id for c in store.agent_connections("t_1")] == ["a_1"]
    visitor_tab(store)
    assert store.agent_connections("t_1")[0].role == "agent"  # visitors never in the agents' index
    store.delete_agent("a_2")
    assert store.get_agent("a_2") is None


def test_no_bot_answer_while_people_own_the_conversation(store: DynamoStateStore) -> None:
    visitor_tab(store)
    add_agent(store, "a_1", "Alice")
    push, queue = RecordingPush(), ListQueue()
    handle = intake(store, push, queue).handle
    handle("v-tab", json.dumps({"action": "sendMessage", "clientMessageId": "cmid-0001", "text": "转人工"}))
    handle("v-tab", json.dumps({"action": "sendMessage", "clientMessageId": "cmid-0002", "text": "hello?"}))
    conversation_id = push.of("v-tab", "ack")[0]["conversationId"]
    assert queue.jobs == []  # nothing for the bot
    assert store.get_conversation(conversation_id).status == "assigned"  # type: ignore[union-attr]

    # Even a job that reaches the generate function (e.g. queued just before the handoff) is refused.
    stale = GenerateJob(
        tenant_id="t_1",
        conversation_id=conversation_id,
        message_id=push.of("v-tab", "ack")[1]["messageId"],
        connection_id="v-tab",
        callback_url="https://d/s",
        text="hello?",
    )
    model = PausingModel()
    model.go_on.set()
    generator = generator_for(store, push, model)
    assert generator.answer(stale) == "not-bot-owned"
    assert push.of("v-tab", "answer.delta") == []
    assert store.get_message(conversation_id, answer_id_for(stale.message_id)) is None


def test_a_handoff_landing_mid_answer_drops_that_answer(store: DynamoStateStore) -> None:
    visitor_tab(store)
    add_agent(store, "a_1", "Al")  # someone on duty: the request hands off
    push, queue = RecordingPush(), ListQueue()
    intake(store, push, queue).handle(
        "v-tab", json.dumps({"action": "sendMessage", "clientMessageId": "cmid-0001", "text": "How long is shipping?"})
    )
    [job] = queue.jobs
    model = PausingModel()
    generator = generator_for(store, push, model, recheck_seconds=0)
    with ThreadPoolExecutor(1) as pool:
        answering = pool.submit(generator.answer, job)
        push.wait_for("v-tab", "answer.delta")  # the answer is on screen...
        # ...when the visitor presses "talk to a human" (another invocation of the message function).
        intake(store, push).handle("v-tab", json.dumps({"action": "requestHuman"}))
        model.go_on.set()
        outcome = answering.result(timeout=30)

    assert outcome == "dropped-handoff" and model.closed
    types = [f["type"] for f in push.of("v-tab")]
    assert "answer.end" not in types and "answer.cancelled" in types
    assert store.get_message(job.conversation_id, answer_id_for(job.message_id)) is None
    assert [m.role for m in store.list_messages(job.conversation_id)] == ["visitor", "event", "event"]


def test_two_agents_accepting_at_once_get_one_owner(store: DynamoStateStore) -> None:
    visitor_tab(store)
    agents = [add_agent(store, f"a_{i}", f"Agent {i}") for i in range(4)]
    conversation = Conversation(
        conversation_id="c_1", tenant_id="t_1", visitor_id="visitor-aaa", created_at=1, updated_at=1
    )
    store.put_conversation(conversation)
    store.change_status(conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"})))

    def accept(agent: Agent) -> str:
        try:
            Handoff(store, Notifier(store, RecordingPush())).accept(agent, "c_1")
            return agent.agent_id
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(accept, agents))
    winners = [r for r in results if r != "conflict"]
    assert len(winners) == 1
    assert store.get_conversation("c_1").assignee_id == winners[0]  # type: ignore[union-attr]
    assert sum(m.event == "assigned" for m in store.list_messages("c_1")) == 1


def test_resends_across_reconnects_store_each_message_once(store: DynamoStateStore) -> None:
    visitor_tab(store, "v-tab-1")
    add_agent(store, "a_1", "Alice")
    push = RecordingPush()
    intake(store, push).handle("v-tab-1", json.dumps({"action": "requestHuman"}))
    conversation_id = push.of("v-tab-1", "conversation.status")[0]["conversationId"]
    assert store.get_conversation(conversation_id).assignee_id == "a_1"  # type: ignore[union-attr]

    # The visitor's tab drops; the agent writes meanwhile, then resends the same frame from a new tab.
    store.delete_connection("v-tab-1")
    agent_frame = {"action": "agentMessage", "conversationId": conversation_id, "clientMessageId": "agent-0001"}
    with ThreadPoolExecutor(3) as pool:
        list(
            pool.map(
                lambda _: intake(store, push).handle("tab-a_1", json.dumps({**agent_frame, "text": "Hi"})), range(3)
            )
        )
    # The visitor comes back on a new connection and resends what they typed while offline, twice.
    visitor_tab(store, "v-tab-2")
    visitor_frame = {"action": "sendMessage", "clientMessageId": "cmid-0009", "text": "hi, me again"}
    for _ in range(2):
        intake(store, push).handle("v-tab-2", json.dumps({**visitor_frame, "conversationId": conversation_id}))
    intake(store, push).handle("v-tab-2", json.dumps({"action": "history", "conversationId": conversation_id}))

    [page] = push.of("v-tab-2", "history")
    texts = [m["text"] for m in page["messages"] if m["role"] in ("visitor", "agent")]
    assert texts == ["Hi", "hi, me again"]
    acks = push.of("v-tab-2", "ack")
    assert len(acks) == 2 and acks[0]["messageId"] == acks[1]["messageId"]
    agent_acks = push.of("tab-a_1", "ack")
    assert len(agent_acks) == 3 and len({a["messageId"] for a in agent_acks}) == 1
    assert len(push.of("tab-a_1", "visitor.message")) == 1  # the agent saw the visitor's message once


# --- handoff only to people who exist ---


def queued_conversation(store: DynamoStateStore, n: int, waiting_since: int) -> Conversation:
    conversation = Conversation(
        conversation_id=f"c_{n}",
        tenant_id="t_1",
        visitor_id=f"visitor-{n:03d}",
        created_at=1,
        updated_at=1,
        status="queued",
        waiting_since=waiting_since,
    )
    store.put_conversation(conversation)
    return conversation


def test_nobody_on_duty_keeps_the_bot_and_a_left_message_is_a_ticket(store: DynamoStateStore) -> None:
    push = RecordingPush()
    add_agent(store, "a_1", "Al", online=False)
    visitor_tab(store)
    desk = intake(store, push)
    desk.handle("v-tab", json.dumps({"action": "requestHuman"}))
    notice = push.wait_for("v-tab", "notice")
    assert notice["code"] == "no_agents" and notice["leaveMessage"] is True
    conversation_id = notice["conversationId"]
    assert store.get_conversation(conversation_id).status == "bot"  # type: ignore[union-attr]

    leave = {"action": "leaveMessage", "contact": "al@example.com", "name": "Li", "text": "Call me"}
    desk.handle("v-tab", json.dumps(leave))
    [ticket] = store.open_tickets("t_1")
    assert ticket.conversation_id == conversation_id and ticket.ticket is not None
    assert (ticket.ticket.contact, ticket.ticket.name, ticket.ticket.text) == ("al@example.com", "Li", "Call me")

    # The agent logs in later: the ticket is in the state; closing it takes it off the index, once.
    add_agent(store, "a_1", "Al")
    desk.handle("tab-a_1", json.dumps({"action": "agentSync"}))
    state = push.wait_for("tab-a_1", "agent.state")
    assert [t["contact"] for t in state["tickets"]] == ["al@example.com"]
    desk.handle("tab-a_1", json.dumps({"action": "closeTicket", "conversationId": conversation_id}))
    assert push.wait_for("tab-a_1", "tickets.updated")["tickets"] == []
    assert store.open_tickets("t_1") == []
    closed = store.get_conversation(conversation_id)
    assert closed is not None and closed.ticket is not None and closed.ticket.status == "closed"
    assert store.close_ticket(conversation_id, "a_1", 5) is None


def test_an_agent_who_logs_in_takes_the_oldest_queued_first(store: DynamoStateStore) -> None:
    push = RecordingPush()
    for n, since in ((1, 3000), (2, 1000), (3, 2000)):
        queued_conversation(store, n, since)
    add_agent(store, "a_1", "Al")
    store.update_agent("a_1", AgentEdit(capacity=2))

    Handoff(store, Notifier(store, push)).drain("t_1")

    assert [store.get_conversation(f"c_{n}").status for n in (1, 2, 3)] == [  # type: ignore[union-attr]
        "queued",
        "assigned",
        "assigned",
    ]
    assert [f["conversation"]["conversationId"] for f in push.of("tab-a_1", "conversation.assigned")] == ["c_2", "c_3"]
    assert store.get_agent("a_1").load == 2  # type: ignore[union-attr]


def test_concurrent_drains_assign_each_conversation_once_within_capacity(store: DynamoStateStore) -> None:
    push = RecordingPush()
    for n in range(8):
        queued_conversation(store, n, 1000 + n)
    add_agent(store, "a_1", "Al")
    add_agent(store, "a_2", "Bo")
    for agent_id in ("a_1", "a_2"):
        store.update_agent(agent_id, AgentEdit(capacity=3))

    def drain(_: int) -> int:
        return len(Handoff(store, Notifier(store, push)).drain("t_1"))

    with ThreadPoolExecutor(max_workers=6) as pool:
        taken = sum(pool.map(drain, range(6)))

    assert taken == 6
    loads = [store.get_agent(a).load for a in ("a_1", "a_2")]  # type: ignore[union-attr]
    assert loads == [3, 3]
    owners = {n: store.get_conversation(f"c_{n}").assignee_id for n in range(8)}  # type: ignore[union-attr]
    assert sum(1 for owner in owners.values() if owner) == 6
    assert len(store.assigned_conversations("a_1")) == len(store.assigned_conversations("a_2")) == 3
    # Oldest first: the two left waiting are the two newest.
    assert [n for n, owner in owners.items() if owner is None] == [6, 7]


def test_the_still_waiting_notice_is_claimed_once(store: DynamoStateStore) -> None:
    push = RecordingPush()
    conversation = queued_conversation(store, 1, 1000)
    visitor_tab(store)
    store.set_connection_conversation("v-tab", "c_1")

    def check(_: int) -> int:
        return Handoff(store, Notifier(store, push)).check_waits("t_1")

    with ThreadPoolExecutor(max_workers=4) as pool:
        told = sum(pool.map(check, range(4)))

    assert told == 1 and [f["code"] for f in push.of("v-tab", "notice")] == ["still_waiting"]
    assert not store.mark_wait_notified("c_1", 1000, 5)
    # A new wait (handed off again) may be told again.
    store.change_status(conversation, StatusChange(status="bot", from_statuses=frozenset({"queued"})))
    again = store.change_status(
        conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"}), waiting_since=2000)
    )
    assert again is not None and again.wait_notified_at is None
    assert store.mark_wait_notified("c_1", 2000, 6)
