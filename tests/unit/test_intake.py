import json

import pytest

from shared.chat.intake import Intake
from shared.state.records import Connection, StoredMessage, Tenant, answer_id_for
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
