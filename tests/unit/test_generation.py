import pytest

from shared.chat.generation import Generator
from shared.chat.jobs import GenerateJob
from shared.knowledge.base import Passage
from shared.state.records import Conversation, StoredMessage, answer_id_for
from tests.unit.fakes import FakeAnswerModel, FakePush, FakeRetriever, InMemoryContextCache, InMemoryStateStore

PASSAGE = Passage(document_id="returns", title="Returns", text="Return within 30 days.", url="https://x/r", score=0.9)


def seeded_store() -> InMemoryStateStore:
    store = InMemoryStateStore()
    store.put_conversation(
        Conversation(conversation_id="c1", tenant_id="t", visitor_id="v", created_at=1, updated_at=1)
    )
    for i, (role, text) in enumerate([("visitor", "hi"), ("bot", "hello"), ("visitor", "can I return it?")]):
        message_id = f"000000000000{i}-aaaa"
        store.messages[("c1", message_id)] = StoredMessage(
            conversation_id="c1", message_id=message_id, tenant_id="t", role=role, text=text, created_at=i
        )
    return store


JOB = GenerateJob(
    tenant_id="t",
    conversation_id="c1",
    message_id="0000000000002-aaaa",
    connection_id="conn",
    callback_url="https://d/s",
    text="can I return it?",
)


def make(
    store: InMemoryStateStore, model: FakeAnswerModel, push: FakePush, cache: InMemoryContextCache | None = None
) -> Generator:
    return Generator(
        store=store,
        cache=cache or InMemoryContextCache(),
        retriever=FakeRetriever([PASSAGE]),
        model=model,
        push_for=lambda url: push,
        history_turns=10,
        top_k=4,
        flush_ms=0,
        flush_chars=400,
    )


def test_answer_is_streamed_then_stored_once_with_citations() -> None:
    store, push = seeded_store(), FakePush()
    model = FakeAnswerModel(["Yes, ", "within ", "30 days."])
    assert make(store, model, push).answer(JOB) == "answered"

    assert push.types()[-1] == "answer.end" and push.types().count("answer.delta") >= 2
    deltas = [f for _, f in push.frames if f["type"] == "answer.delta"]
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    end = push.frames[-1][1]
    assert end["text"] == "Yes, within 30 days." == "".join(d["text"] for d in deltas)
    assert end["messageId"] == answer_id_for(JOB.message_id)
    assert end["citations"] == [
        {"documentId": "returns", "title": "Returns", "snippet": "Return within 30 days.", "url": "https://x/r"}
    ]
    stored = store.get_message("c1", answer_id_for(JOB.message_id))
    assert stored is not None and stored.text == end["text"] and stored.citations[0].document_id == "returns"
    # The model saw the earlier turns, not the question itself.
    assert [(t.role, t.text) for t in model.histories[0]] == [("visitor", "hi"), ("bot", "hello")]


def test_redelivered_job_is_not_answered_twice() -> None:
    store, push = seeded_store(), FakePush()
    make(store, FakeAnswerModel(["a", "b"]), push).answer(JOB)
    frames = len(push.frames)
    assert make(store, FakeAnswerModel(["a", "b"]), push).answer(JOB) == "already-answered"
    assert len(push.frames) == frames


def test_gone_connection_stops_the_model_and_stores_nothing() -> None:
    store, push = seeded_store(), FakePush(gone_after=1)
    model = FakeAnswerModel([f"piece{i} " for i in range(50)])
    assert make(store, model, push).answer(JOB) == "connection-gone"
    assert model.closed and model.consumed < 50
    assert store.get_message("c1", answer_id_for(JOB.message_id)) is None


def test_failure_before_any_frame_is_raised_for_a_retry() -> None:
    store, push = seeded_store(), FakePush()
    with pytest.raises(RuntimeError):
        make(store, FakeAnswerModel(["a"], fail_after=0), push).answer(JOB)
    assert push.frames == []


def test_failure_mid_stream_ends_with_an_error_frame() -> None:
    store, push = seeded_store(), FakePush()
    assert make(store, FakeAnswerModel(["a", "b", "c"], fail_after=1), push).answer(JOB) == "failed-mid-stream"
    assert push.types() == ["answer.delta", "error"]


def test_stale_cache_is_replaced_from_the_store() -> None:
    store, push, cache = seeded_store(), FakePush(), InMemoryContextCache()
    cache.replace("c1", store.list_messages("c1")[:1])  # missed later writes (e.g. Redis was down)
    model = FakeAnswerModel(["ok"])
    make(store, model, push, cache).answer(JOB)
    assert [t.text for t in model.histories[0]] == ["hi", "hello"]
    assert [m.text for m in cache.lists["c1"]][-2:] == ["can I return it?", "ok"]


def test_cache_hit_avoids_the_store() -> None:
    store, push, cache = seeded_store(), FakePush(), InMemoryContextCache()
    cache.replace("c1", store.list_messages("c1"))
    store.recent_messages = lambda *a: pytest.fail("store read on a cache hit")  # type: ignore[method-assign]
    model = FakeAnswerModel(["ok"])
    make(store, model, push, cache).answer(JOB)
    assert [t.text for t in model.histories[0]] == ["hi", "hello"]
