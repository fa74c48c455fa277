import dataclasses
import json
import threading

import pytest

from shared.chat.intake import Intake
from shared.errors import ConnectionGone
from shared.state.records import Connection, Conversation, StoredMessage, Tenant, answer_id_for
from shared.tenant_config import TenantConfigCache
from shared.wire.jobs import GenerateJob, SqsGenerationQueue, message_group
from tests.unit.fakes import FakePush, FakeQueue, InMemoryContextCache, InMemoryStateStore


@pytest.fixture
def store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk", created_at=1))
    for cid, visitor in (("conn-a", "visitor-aaa"), ("conn-b", "visitor-bbb")):
        store.put_connection(
            Connection(
                connection_id=cid, tenant_id="t_1", visitor_id=visitor, connected_at=1, domain_name="d", stage="s"
            )
        )
    return store


def make_intake(store: InMemoryStateStore, queue: FakeQueue | None = None) -> tuple[Intake, FakePush, FakeQueue]:
    push, queue = FakePush(), queue or FakeQueue()
    intake = Intake(
        store=store,
        cache=InMemoryContextCache(),
        queue=queue,
        push=push,
        callback_url="https://d/s",
        max_message_chars=100,
    )
    return intake, push, queue


def send(text: str = "Where is my order?", cmid: str = "cmid-0001", **extra: str) -> str:
    return json.dumps({"action": "sendMessage", "clientMessageId": cmid, "text": text, **extra})


def test_message_is_stored_acked_then_queued(store: InMemoryStateStore) -> None:
    intake, push, queue = make_intake(store)
    intake.handle("conn-a", send())

    [(connection_id, ack)] = push.frames
    assert connection_id == "conn-a" and ack["type"] == "ack" and ack["clientMessageId"] == "cmid-0001"
    stored = store.get_message(ack["conversationId"], ack["messageId"])
    assert stored is not None and stored.text == "Where is my order?" and stored.role == "visitor"
    [job] = queue.jobs
    assert (job.message_id, job.conversation_id, job.connection_id) == (
        ack["messageId"],
        ack["conversationId"],
        "conn-a",
    )
    assert store.get_connection("conn-a").conversation_id == ack["conversationId"]  # type: ignore[union-attr]


def test_second_message_continues_the_same_conversation(store: InMemoryStateStore) -> None:
    intake, push, _ = make_intake(store)
    intake.handle("conn-a", send(cmid="cmid-0001"))
    intake.handle("conn-a", send(cmid="cmid-0002"))
    first, second = (f for _, f in push.frames)
    assert first["conversationId"] == second["conversationId"]
    assert len(store.list_messages(first["conversationId"])) == 2


def test_resend_is_acked_again_but_stored_and_queued_once(store: InMemoryStateStore) -> None:
    intake, push, queue = make_intake(store)
    intake.handle("conn-a", send())
    # The first job is answered before the resend arrives.
    first = push.frames[0][1]
    store.add_answer(
        StoredMessage(
            conversation_id=first["conversationId"],
            message_id=answer_id_for(first["messageId"]),
            tenant_id="t_1",
            role="bot",
            text="on its way",
            created_at=2,
        )
    )
    intake.handle("conn-a", send())
    assert [f["messageId"] for _, f in push.frames] == [first["messageId"]] * 2
    assert len(queue.jobs) == 1
    assert len(store.list_messages(first["conversationId"])) == 2  # question + answer, no duplicate


def test_resend_of_an_unanswered_message_is_queued_again(store: InMemoryStateStore) -> None:
    intake, push, queue = make_intake(store)
    intake.handle("conn-a", send())
    intake.handle("conn-a", send())
    assert len(queue.jobs) == 2
    assert queue.jobs[0].message_id == queue.jobs[1].message_id  # the queue deduplicates by this id


def test_client_ids_are_scoped_per_visitor(store: InMemoryStateStore) -> None:
    intake, push, _ = make_intake(store)
    intake.handle("conn-a", send(cmid="same-id-1"))
    intake.handle("conn-b", send(cmid="same-id-1"))
    a, b = (f for _, f in push.frames)
    assert a["messageId"] != b["messageId"] and a["conversationId"] != b["conversationId"]


def test_bad_frame_gets_an_error_and_nothing_is_stored(store: InMemoryStateStore) -> None:
    intake, push, queue = make_intake(store)
    intake.handle("conn-a", send(text="x" * 101, cmid="cmid-0009"))
    [(_, error)] = push.frames
    assert error == {
        "type": "error",
        "code": "message_too_large",
        "message": "text is 101 characters; the limit is 100",
    }
    assert store.messages == {} and queue.jobs == []


def test_someone_elses_conversation_is_not_found(store: InMemoryStateStore) -> None:
    intake, push, queue = make_intake(store)
    intake.handle("conn-a", send(cmid="cmid-0001"))
    theirs = push.frames[0][1]["conversationId"]
    intake.handle("conn-b", send(cmid="cmid-0002", conversationId=theirs))
    error = push.frames[1][1]
    assert error["type"] == "error" and error["code"] == "not_found" and error["clientMessageId"] == "cmid-0002"
    assert len(store.list_messages(theirs)) == 1 and len(queue.jobs) == 1


def test_unregistered_connection_gets_an_error(store: InMemoryStateStore) -> None:
    intake, push, _ = make_intake(store)
    intake.handle("conn-unknown", send())
    assert push.frames[0][1]["code"] == "bad_request"


def test_queue_failure_after_storing_asks_for_a_resend_which_then_queues(store: InMemoryStateStore) -> None:
    failing = FakeQueue(fail=True)
    intake, push, _ = make_intake(store, failing)
    intake.handle("conn-a", send())
    assert push.types() == ["ack", "error"] and push.frames[1][1]["code"] == "retry"
    failing.fail = False
    intake.handle("conn-a", send())
    assert len(failing.jobs) == 1


# --- fewer round trips on the way to the ack ---


class CountingStore(InMemoryStateStore):
    def __init__(self) -> None:
        super().__init__()
        self.tenant_reads = 0
        self.client_id_reads = 0

    def get_tenant(self, tenant_id: str) -> Tenant | None:
        self.tenant_reads += 1
        return super().get_tenant(tenant_id)

    def find_by_client_id(self, tenant_id: str, visitor_id: str, client_message_id: str) -> StoredMessage | None:
        self.client_id_reads += 1
        return super().find_by_client_id(tenant_id, visitor_id, client_message_id)


@pytest.fixture
def counting() -> CountingStore:
    store = CountingStore()
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk", created_at=1))
    store.put_connection(
        Connection(
            connection_id="conn-a",
            tenant_id="t_1",
            visitor_id="visitor-aaa",
            connected_at=1,
            domain_name="d",
            stage="s",
        )
    )
    return store


def test_handoff_settings_are_read_once_per_ttl_when_cached(counting: CountingStore) -> None:
    now = [100.0]
    configs = TenantConfigCache(counting.tenant_config, 30, clock=lambda: now[0])
    intake, _, queue = make_intake(counting)
    cached = dataclasses.replace(intake, tenant_configs=configs)
    cached.handle("conn-a", send(cmid="cmid-0001"))
    cached.handle("conn-a", send(cmid="cmid-0002"))
    assert counting.tenant_reads == 1
    now[0] += 31
    cached.handle("conn-a", send(cmid="cmid-0003"))
    assert counting.tenant_reads == 2
    intake.handle("conn-a", send(cmid="cmid-0004"))  # no cache: every message reads
    assert counting.tenant_reads == 3
    assert len(queue.jobs) == 4


def test_a_message_into_its_conversation_skips_the_resend_lookup_and_a_resend_is_still_caught(
    counting: CountingStore,
) -> None:
    intake, push, queue = make_intake(counting)
    intake.handle("conn-a", send(cmid="cmid-0001"))  # a new conversation: is it a resend?
    assert counting.client_id_reads == 1
    intake.handle("conn-a", send(cmid="cmid-0002"))  # into that conversation: the write decides
    assert counting.client_id_reads == 1
    intake.handle("conn-a", send(cmid="cmid-0002"))  # a resend of it, found by the conditional write
    first, second, resend = (f for _, f in push.frames)
    assert resend["type"] == "ack" and resend["messageId"] == second["messageId"] != first["messageId"]
    assert len(counting.list_messages(first["conversationId"])) == 2
    assert [j.message_id for j in queue.jobs] == [first["messageId"], second["messageId"], second["messageId"]]


def test_the_queue_deduplicates_per_message_and_connection() -> None:
    sent: list[dict[str, str]] = []

    class RecordingSqs:
        def send_message(self, **kwargs: str) -> None:
            sent.append(kwargs)

    queue = SqsGenerationQueue(RecordingSqs(), "https://sqs/q.fifo")
    job = GenerateJob(
        tenant_id="t_1", conversation_id="c_1", message_id="m1", connection_id="conn-a", callback_url="u", text="hi"
    )
    queue.enqueue(job)
    queue.enqueue(job)
    queue.enqueue(job.model_copy(update={"connection_id": "conn-b"}))
    ids = [s["MessageDeduplicationId"] for s in sent]
    assert ids[0] == ids[1] != ids[2]
    assert {s["MessageGroupId"] for s in sent} == {message_group(job, 4)}


def test_a_tenants_conversations_share_a_bounded_set_of_message_groups() -> None:
    """FIFO serves one message per group at a time: a tenant's groups bound its answers in flight."""

    def group(tenant: str, conversation: str) -> str:
        job = GenerateJob(
            tenant_id=tenant, conversation_id=conversation, message_id="m", connection_id="c", callback_url="", text="?"
        )
        return message_group(job, 4)

    flood = {group("t_flood", f"c_{n}") for n in range(200)}
    assert len(flood) == 4 and all(g.startswith("t_flood:") for g in flood)
    assert group("t_flood", "c_7") == group("t_flood", "c_7")  # a conversation stays in its group: in order
    assert group("t_other", "c_7") not in flood  # another tenant's jobs never wait in the flood's groups


def test_the_job_is_queued_even_when_the_visitor_left_before_the_ack(store: InMemoryStateStore) -> None:
    intake, push, queue = make_intake(store)
    push.gone.add("conn-a")
    with pytest.raises(ConnectionGone):  # the message handler logs it
        intake.handle("conn-a", send())
    # Stored and queued side by side with the ack: the answer finds the connection gone and stays
    # unanswered, so a resend from a new connection queues it again (the queue's dedup id differs).
    [job] = queue.jobs
    assert store.get_message(job.conversation_id, job.message_id) is not None


def test_a_message_naming_its_conversation_reads_it_once_and_lands_there(counting: CountingStore) -> None:
    reads: list[str] = []
    original = counting.get_conversation

    def get_conversation(conversation_id: str) -> Conversation | None:
        reads.append(conversation_id)
        return original(conversation_id)

    counting.get_conversation = get_conversation  # type: ignore[method-assign]
    intake, push, queue = make_intake(counting)
    intake.handle("conn-a", send(cmid="cmid-0001"))
    conversation_id = push.frames[0][1]["conversationId"]
    reads.clear()
    intake.handle("conn-a", send(cmid="cmid-0002", conversationId=conversation_id))
    assert reads == [conversation_id]
    assert push.frames[1][1]["conversationId"] == conversation_id and len(queue.jobs) == 2


def test_a_deeply_nested_frame_gets_an_error_frame(store: InMemoryStateStore) -> None:
    intake, push, queue = make_intake(store)
    intake.handle("conn-a", "[" * 3000 + "]" * 3000)
    [(connection_id, error)] = push.frames
    assert (connection_id, error["type"], error["code"]) == ("conn-a", "error", "bad_request")
    assert not queue.jobs and not store.messages


class RacingStore(InMemoryStateStore):
    """Holds the first ``racers`` connection reads at a barrier, so frames handled side by side (two
    Lambda invocations) all see the connection before any of them has started a conversation."""

    def __init__(self, racers: int) -> None:
        super().__init__()
        self._barrier = threading.Barrier(racers, timeout=5)
        self._waiting = racers

    def get_connection(self, connection_id: str) -> Connection | None:
        connection = super().get_connection(connection_id)
        if self._waiting > 0:
            self._waiting -= 1
            self._barrier.wait()
        return connection.model_copy() if connection is not None else None


def test_back_to_back_messages_without_a_conversation_id_share_one_conversation() -> None:
    store = RacingStore(racers=4)
    store.put_tenant(Tenant(tenant_id="t_1", name="Shop", widget_key="wk", created_at=1))
    store.put_connection(
        Connection(
            connection_id="conn-a",
            tenant_id="t_1",
            visitor_id="visitor-aaa",
            connected_at=1,
            domain_name="d",
            stage="s",
        )
    )
    intake, push, queue = make_intake(store)
    threads = [threading.Thread(target=intake.handle, args=("conn-a", send(cmid=f"cmid-000{n}"))) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    acks = [frame for _, frame in push.frames if frame["type"] == "ack"]
    assert len(acks) == 4 and len(queue.jobs) == 4
    assert len({ack["conversationId"] for ack in acks}) == 1
    assert list(store.conversations) == [acks[0]["conversationId"]]
    assert store.get_connection("conn-a").conversation_id == acks[0]["conversationId"]  # type: ignore[union-attr]
