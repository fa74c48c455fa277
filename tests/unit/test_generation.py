import dataclasses
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from shared.chat.generation import AnswerGate, Generator
from shared.knowledge.base import Passage
from shared.knowledge.retrieve_client import RetrievalResult
from shared.model.answer_cache import Flight
from shared.model.answer_cache_memory import InMemoryAnswerCache
from shared.model.answer_keys import AnswerKey
from shared.model.answer_model import Answer, AnswerModel, AnswerStream, ModelUsage, Turn
from shared.model.gateway import FixedModelGateway, ModelGateway, TenantModel
from shared.observability import AnswerMeter, AnswerRecord
from shared.state.records import Conversation, StoredMessage, answer_id_for
from shared.wire.jobs import GenerateJob
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
        models=FixedModelGateway(model, identity="default"),
        push_for=lambda url: push,
        history_turns=10,
        top_k=4,
        flush_ms=0,
        flush_chars=400,
    )


class _Gateway(ModelGateway):
    def __init__(self, tenant_model: TenantModel) -> None:
        self.tenant_model = tenant_model

    def for_tenant(self, tenant_id: str) -> TenantModel:
        return self.tenant_model


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


def test_redelivered_job_is_not_answered_twice_but_its_end_is_sent_again() -> None:
    store, push = seeded_store(), FakePush()
    make(store, FakeAnswerModel(["a", "b"]), push).answer(JOB)
    frames, stored = len(push.frames), dict(store.messages)
    again = FakeAnswerModel(["other"])
    assert make(store, again, push).answer(JOB) == "already-answered"
    # Only the stored answer's end frame again (the widget ignores it if it has the answer): no
    # deltas, no model call, nothing stored twice.
    assert push.frames[frames:] == [push.frames[frames - 1]]
    assert push.frames[-1][1]["type"] == "answer.end" and push.frames[-1][1]["text"] == "ab"
    assert again.consumed == 0 and store.messages == stored


class CrashingPush(FakePush):
    """The generate function dies while sending a frame of ``kind`` (once): the frame never arrives."""

    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind

    def send(self, connection_id: str, frame: str) -> None:
        if self.kind and f'"type":"{self.kind}"' in frame.replace(" ", ""):
            self.kind = ""
            raise RuntimeError("the runtime died")
        super().send(connection_id, frame)


@pytest.mark.parametrize(
    ("pieces", "fail_after", "terminal"),
    [(["Yes, ", "within 30 days."], None, "answer.end"), (["Yes, ", "within"], 1, "answer.end"), (["a"], 0, "error")],
    ids=["complete", "incomplete", "model_unavailable"],
)
def test_a_job_that_stored_its_outcome_and_died_before_telling_the_visitor_is_told_by_its_redelivery(
    pieces: list[str], fail_after: int | None, terminal: str
) -> None:
    # The lost-job path of the fault suite: the first attempt stored the outcome, then crashed (or
    # the store failed) before the terminal frame went out; the redelivery found "already answered".
    store, push = seeded_store(), CrashingPush(terminal)
    generator = make(store, FakeAnswerModel(pieces, fail_after=fail_after), push)
    with pytest.raises(RuntimeError):
        generator.answer(JOB)
    assert terminal not in push.types()
    stored = dict(store.messages)

    assert make(store, FakeAnswerModel(["late"]), push).answer(JOB) == "already-answered"
    assert push.types().count(terminal) == 1 and store.messages == stored
    frame = push.frames[-1][1]
    assert frame["messageId"] == answer_id_for(JOB.message_id)
    record = store.get_message("c1", answer_id_for(JOB.message_id))
    assert record is not None
    if terminal == "error":
        assert frame["code"] == "model_unavailable" and frame["questionId"] == JOB.message_id
        assert record.event == "model_unavailable"
    else:
        assert frame["text"] == record.text and frame["complete"] is (fail_after is None)
        assert frame["citations"][0]["documentId"] == "returns"


def test_a_resent_model_unavailable_carries_the_tenants_text() -> None:
    store, push = seeded_store(), CrashingPush("error")
    generator = make(store, FakeAnswerModel(["a"], fail_after=0), push)
    tenant_model = replace(generator.models.for_tenant("t"), unavailable_text="Back soon: call 555-0100.")
    generator = replace(generator, models=_Gateway(tenant_model))
    with pytest.raises(RuntimeError):
        generator.answer(JOB)
    assert generator.answer(JOB) == "already-answered"
    assert push.frames[-1][1]["text"] == "Back soon: call 555-0100."


def test_gone_connection_stops_the_model_and_stores_nothing() -> None:
    store, push = seeded_store(), FakePush(gone_after=1)
    model = FakeAnswerModel([f"piece{i} " for i in range(50)])
    assert make(store, model, push).answer(JOB) == "connection-gone"
    assert model.closed and model.consumed < 50
    assert store.get_message("c1", answer_id_for(JOB.message_id)) is None


def test_failure_before_any_frame_is_settled_with_model_unavailable() -> None:
    # No re-raise (that would hold the conversation's FIFO group for the visibility timeout): the
    # visitor gets one error frame naming the message, and the failure is recorded, once.
    store, push = seeded_store(), FakePush()
    assert make(store, FakeAnswerModel(["a"], fail_after=0), push).answer(JOB) == "model-unavailable"
    assert push.types() == ["error"]
    error = push.frames[0][1]
    assert error["code"] == "model_unavailable" and error["retryable"] is True
    assert error["messageId"] == answer_id_for(JOB.message_id) and error["questionId"] == JOB.message_id
    assert error["conversationId"] == "c1"
    record = store.get_message("c1", answer_id_for(JOB.message_id))
    assert record is not None and record.role == "event" and record.event == "model_unavailable"
    # A redelivery of the same job finds it settled: the same frame again, nothing stored twice.
    assert make(store, FakeAnswerModel(["late"]), push).answer(JOB) == "already-answered"
    assert push.frames == [push.frames[0]] * 2


def test_a_failed_retrieval_is_settled_with_model_unavailable_too() -> None:
    class BrokenRetriever(FakeRetriever):
        def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]:
            raise TimeoutError("the retrieve function timed out")

    store, push = seeded_store(), FakePush()
    model = FakeAnswerModel(["never asked"])
    generator = replace(make(store, model, push), retriever=BrokenRetriever([]))
    assert generator.answer(JOB) == "model-unavailable"
    assert push.types() == ["error"] and push.frames[0][1]["code"] == "model_unavailable"
    assert model.histories == []  # the model was not asked without its passages


def test_extractive_fallback_answers_when_the_tenant_chose_it() -> None:
    store, push = seeded_store(), FakePush()
    generator = make(store, FakeAnswerModel(["a"], fail_after=0), push)
    chosen = replace(
        generator.models.for_tenant("t"),
        on_unavailable="extractive",
        fallback=FakeAnswerModel(["From our help centre: ", "Return within 30 days."]),
    )
    generator = replace(generator, models=_Gateway(chosen))
    assert generator.answer(JOB) == "answered-by-fallback"
    assert "error" not in push.types()
    end = push.frames[-1][1]
    assert end["type"] == "answer.end" and end["complete"] is True and "30 days" in end["text"]


def test_failure_mid_stream_ends_incomplete_and_is_stored_as_such() -> None:
    store, push = seeded_store(), FakePush()
    outcome = make(store, FakeAnswerModel(["a", "b", "c"], fail_after=2), push).answer(JOB)
    assert outcome == "incomplete"
    assert push.types()[-1] == "answer.end" and "error" not in push.types()
    end = push.frames[-1][1]
    shown = "".join(f["text"] for _, f in push.frames if f["type"] == "answer.delta")
    assert end["complete"] is False and end["text"] == shown == "ab"
    stored = store.get_message("c1", answer_id_for(JOB.message_id))
    assert stored is not None and stored.incomplete and stored.text == "ab"


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


# --- the model gateway, reused answers and metering ---


class VersionedRetriever(FakeRetriever):
    """Reports the tenant's knowledge version next to the passages, as the retrieve function does."""

    def __init__(self, passages: list[Passage], version: str | None = "kv1") -> None:
        super().__init__(passages)
        self.version = version

    def search(self, tenant_id: str, query: str, k: int) -> RetrievalResult:
        return RetrievalResult(passages=self.retrieve(tenant_id, query, k), knowledge_version=self.version)


class RecordingMeter(AnswerMeter):
    def __init__(self) -> None:
        self.records: list[AnswerRecord] = []

    def record(self, answer: AnswerRecord) -> None:
        self.records.append(answer)


class CountingModel(FakeAnswerModel):
    """Reports usage like the chat-model adapters do."""

    def __init__(self, pieces: list[str], **kwargs: Any) -> None:
        super().__init__(pieces, **kwargs)
        self.streams = 0

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> AnswerStream:
        self.streams += 1
        usage = ModelUsage(provider="openai", model="qwen", input_tokens=120, output_tokens=len(self.pieces))
        return AnswerStream(super().stream(question, answer, history), usage)


def job_in(conversation: str, message_id: str = "0000000000002-aaaa", text: str = "can I return it?") -> GenerateJob:
    return GenerateJob(
        tenant_id="t",
        conversation_id=conversation,
        message_id=message_id,
        connection_id=f"conn-{conversation}",
        callback_url="https://d/s",
        text=text,
    )


def first_question_store(*conversations: str) -> InMemoryStateStore:
    store = InMemoryStateStore()
    for conversation in conversations:
        store.put_conversation(
            Conversation(conversation_id=conversation, tenant_id="t", visitor_id="v", created_at=1, updated_at=1)
        )
        store.messages[(conversation, "0000000000002-aaaa")] = StoredMessage(
            conversation_id=conversation,
            message_id="0000000000002-aaaa",
            tenant_id="t",
            role="visitor",
            text="can I return it?",
            created_at=2,
        )
    return store


def cached_generator(
    store: InMemoryStateStore,
    model: AnswerModel,
    push: FakePush,
    answers: InMemoryAnswerCache,
    meter: RecordingMeter,
    *,
    version: str | None = "kv1",
    cacheable: bool = True,
) -> Generator:
    return Generator(
        store=store,
        cache=InMemoryContextCache(),
        retriever=VersionedRetriever([PASSAGE], version),
        push_for=lambda url: push,
        history_turns=10,
        top_k=4,
        flush_ms=0,
        flush_chars=400,
        models=FixedModelGateway(model, identity="qwen-1", cacheable=cacheable),
        answers=answers,
        meter=meter,
    )


def test_the_tenants_model_from_the_gateway_answers() -> None:
    store, push, meter = first_question_store("c1"), FakePush(), RecordingMeter()
    model = CountingModel(["Yes, ", "30 days."])

    outcome = cached_generator(store, model, push, InMemoryAnswerCache(60), meter).answer(job_in("c1"))

    assert outcome == "answered" and model.streams == 1
    [record] = meter.records
    assert (record.tenant_id, record.conversation_id, record.message_id) == ("t", "c1", "0000000000002-aaaa")
    assert (record.source, record.provider, record.input_tokens, record.output_tokens) == ("model", "openai", 120, 2)
    assert record.frames == 2 and record.first_frame_ms <= record.duration_ms


def test_the_stored_answer_carries_its_tokens_model_and_latency() -> None:
    store, answers, meter = first_question_store("c1", "c2"), InMemoryAnswerCache(60), RecordingMeter()
    model = CountingModel(["Yes, ", "within ", "30 days."])

    cached_generator(store, model, FakePush(), answers, meter).answer(job_in("c1"))
    cached_generator(store, model, FakePush(), answers, meter).answer(job_in("c2"))

    fresh = store.get_message("c1", answer_id_for("0000000000002-aaaa"))
    reused = store.get_message("c2", answer_id_for("0000000000002-aaaa"))
    assert fresh is not None and fresh.usage is not None and reused is not None and reused.usage is not None
    assert (fresh.usage.source, fresh.usage.provider, fresh.usage.model) == ("model", "openai", "qwen")
    assert (fresh.usage.input_tokens, fresh.usage.output_tokens) == (120, 3)
    assert 0 <= fresh.usage.first_token_ms <= fresh.usage.total_ms
    # Metrics and the stored record describe the same answer.
    assert fresh.usage.total_ms == round(meter.records[0].duration_ms)
    # A cached answer cost no tokens, and says so.
    assert (reused.usage.source, reused.usage.input_tokens, reused.usage.output_tokens) == ("cache", None, None)


def test_a_repeated_question_streams_the_cached_answer_like_a_fresh_one() -> None:
    store, answers, meter = first_question_store("c1", "c2"), InMemoryAnswerCache(60), RecordingMeter()
    model = CountingModel(["You can return any item ", "within 30 days ", "for a full refund."])
    cached_generator(store, model, FakePush(), answers, meter).answer(job_in("c1"))
    push = FakePush()

    assert (
        cached_generator(store, model, push, answers, meter).answer(job_in("c2", text="Can I return it")) == "answered"
    )

    assert model.streams == 1  # the second visitor's answer cost no tokens
    deltas = [f for _, f in push.frames if f["type"] == "answer.delta"]
    end = push.frames[-1][1]
    assert push.types()[-1] == "answer.end" and len(deltas) > 1
    assert [d["seq"] for d in deltas] == list(range(len(deltas)))
    assert (
        "".join(d["text"] for d in deltas) == end["text"] == "You can return any item within 30 days for a full refund."
    )
    assert end["citations"][0]["documentId"] == "returns"
    assert store.get_message("c2", answer_id_for("0000000000002-aaaa")).text == end["text"]  # type: ignore[union-attr]
    assert [r.source for r in meter.records] == ["model", "cache"] and meter.records[1].output_tokens is None


def test_no_reuse_without_a_knowledge_version_or_for_a_free_model() -> None:
    for version, cacheable in ((None, True), ("kv1", False)):
        store, answers, model = first_question_store("c1", "c2"), InMemoryAnswerCache(60), CountingModel(["ok"])
        for conversation in ("c1", "c2"):
            generator = cached_generator(
                store, model, FakePush(), answers, RecordingMeter(), version=version, cacheable=cacheable
            )
            generator.answer(job_in(conversation))
        assert model.streams == 2


def test_a_new_knowledge_version_is_a_new_answer() -> None:
    store, answers, model = first_question_store("c1", "c2"), InMemoryAnswerCache(60), CountingModel(["ok"])
    cached_generator(store, model, FakePush(), answers, RecordingMeter(), version="kv1").answer(job_in("c1"))
    cached_generator(store, model, FakePush(), answers, RecordingMeter(), version="kv2").answer(job_in("c2"))

    assert model.streams == 2


class WatchedCache(InMemoryAnswerCache):
    """Tells the test when a second asker has joined a flight as a follower."""

    def __init__(self) -> None:
        super().__init__(ttl_seconds=60)
        self.follower_joined = threading.Event()

    def join(self, key: AnswerKey, owner: str = "") -> Flight:
        flight = super().join(key, owner)
        if not flight.leader:
            self.follower_joined.set()
        return flight


def test_an_identical_question_in_flight_shares_the_first_answer() -> None:
    store, answers, meter = first_question_store("c1", "c2"), WatchedCache(), RecordingMeter()
    release = threading.Event()

    class SlowModel(CountingModel):
        def stream(self, question: str, answer: Answer, history: list[Turn]) -> AnswerStream:
            inner = super().stream(question, answer, history)

            def pieces() -> Iterator[str]:
                for index, piece in enumerate(inner):
                    if index == 1:
                        release.wait(10)
                    yield piece

            return AnswerStream(pieces(), inner.usage)

    model = SlowModel(["Yes, ", "within 30 days."])
    first_push, second_push = FakePush(), FakePush()
    first = threading.Thread(
        target=cached_generator(store, model, first_push, answers, meter).answer, args=(job_in("c1"),)
    )
    first.start()
    while not first_push.frames:  # the first answer has started streaming
        time.sleep(0.001)
    second = threading.Thread(
        target=cached_generator(store, model, second_push, answers, meter).answer, args=(job_in("c2"),)
    )
    second.start()
    assert answers.follower_joined.wait(10)  # the second job follows the first, which is still streaming
    release.set()
    first.join(10)
    second.join(10)

    assert model.streams == 1
    assert second_push.frames[-1][1]["text"] == first_push.frames[-1][1]["text"] == "Yes, within 30 days."
    assert sorted(r.source for r in meter.records) == ["model", "shared"]


def test_a_failed_answer_is_not_cached() -> None:
    store, answers = first_question_store("c1", "c2"), InMemoryAnswerCache(60)
    failing = cached_generator(store, CountingModel(["a"], fail_after=0), FakePush(), answers, RecordingMeter())
    assert failing.answer(job_in("c1")) == "model-unavailable"
    model = CountingModel(["fresh"])

    cached_generator(store, model, FakePush(), answers, RecordingMeter()).answer(job_in("c2"))

    assert model.streams == 1


def test_a_cut_answer_is_never_cached() -> None:
    store, answers = first_question_store("c1", "c2"), InMemoryAnswerCache(60)
    cut = CountingModel(["Yes, ", "within", " 30 days."], fail_after=2)
    assert cached_generator(store, cut, FakePush(), answers, RecordingMeter()).answer(job_in("c1")) == "incomplete"
    model, push = CountingModel(["Yes, within 30 days."]), FakePush()

    assert cached_generator(store, model, push, answers, RecordingMeter()).answer(job_in("c2")) == "answered"

    assert model.streams == 1  # asked afresh: the cut text was not reused
    assert push.frames[-1][1]["text"] == "Yes, within 30 days." and push.frames[-1][1]["complete"] is True


def test_a_follower_of_an_answer_that_is_cut_gets_it_as_incomplete_too() -> None:
    store, answers, meter = first_question_store("c1", "c2"), WatchedCache(), RecordingMeter()
    release = threading.Event()

    class BreakingModel(CountingModel):
        def stream(self, question: str, answer: Answer, history: list[Turn]) -> AnswerStream:
            inner = super().stream(question, answer, history)

            def pieces() -> Iterator[str]:
                yield next(inner)
                release.wait(10)
                raise RuntimeError("model server killed")

            return AnswerStream(pieces(), inner.usage)

    model = BreakingModel(["Yes, ", "within 30 days."])
    first_push, second_push = FakePush(), FakePush()
    outcomes: list[str] = []
    first = threading.Thread(
        target=lambda: outcomes.append(cached_generator(store, model, first_push, answers, meter).answer(job_in("c1")))
    )
    first.start()
    while not first_push.frames:
        time.sleep(0.001)
    second = threading.Thread(
        target=lambda: outcomes.append(cached_generator(store, model, second_push, answers, meter).answer(job_in("c2")))
    )
    second.start()
    assert answers.follower_joined.wait(10)
    release.set()
    first.join(10)
    second.join(10)

    assert outcomes == ["incomplete", "incomplete"]
    for push in (first_push, second_push):
        end = push.frames[-1][1]
        assert end["type"] == "answer.end" and end["complete"] is False and end["text"] == "Yes, "
    assert len(answers._answers) == 0  # nothing cached


def test_a_follower_of_a_question_whose_model_never_answered_is_told_at_once() -> None:
    # The follower does not spend a second first-token budget on the model that just spent one.
    store, answers = first_question_store("c1", "c2"), WatchedCache()
    release = threading.Event()

    class DeadModel(CountingModel):
        def stream(self, question: str, answer: Answer, history: list[Turn]) -> AnswerStream:
            inner = super().stream(question, answer, history)

            def pieces() -> Iterator[str]:
                release.wait(10)
                raise RuntimeError("no model answered")
                yield from inner  # pragma: no cover

            return AnswerStream(pieces(), inner.usage)

    model = DeadModel(["never"])
    first_push, second_push = FakePush(), FakePush()
    outcomes: list[str] = []

    def run(conversation: str, push: FakePush) -> None:
        outcomes.append(cached_generator(store, model, push, answers, RecordingMeter()).answer(job_in(conversation)))

    first = threading.Thread(target=run, args=("c1", first_push))
    first.start()
    while model.streams == 0:
        time.sleep(0.001)
    second = threading.Thread(target=run, args=("c2", second_push))
    second.start()
    assert answers.follower_joined.wait(10)
    release.set()
    first.join(10)
    second.join(10)

    assert outcomes == ["model-unavailable", "model-unavailable"]
    assert model.streams == 1
    for push in (first_push, second_push):
        assert push.types() == ["error"] and push.frames[0][1]["code"] == "model_unavailable"


def test_a_meter_failure_never_fails_the_answer() -> None:
    class BrokenMeter(RecordingMeter):
        def record(self, answer: AnswerRecord) -> None:
            raise RuntimeError("metrics backend down")

    store, push = first_question_store("c1"), FakePush()
    generator = cached_generator(store, CountingModel(["ok"]), push, InMemoryAnswerCache(60), BrokenMeter())

    assert generator.answer(job_in("c1")) == "answered" and push.types()[-1] == "answer.end"


# --- answers the model declined (its NO_ANSWER marker) ---


class DecliningModel(CountingModel):
    """Reports, once its pieces are consumed, that it declined (as LangChainAnswerModel does when the
    chat model began with NO_ANSWER)."""

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> AnswerStream:
        inner = super().stream(question, answer, history)

        def pieces() -> Iterator[str]:
            yield from inner
            inner.usage.declined = True

        return AnswerStream(pieces(), inner.usage)


class RecordingGate(AnswerGate):
    def __init__(self) -> None:
        self.grounded: list[bool] = []

    def on_answered(self, job: GenerateJob, grounded: bool) -> None:
        self.grounded.append(grounded)


def gated(generator: Generator, gate: AnswerGate) -> Generator:
    return dataclasses.replace(generator, gate=gate)


def test_a_declined_answer_cites_nothing_and_counts_as_no_good_answer_also_when_reused() -> None:
    store, answers, meter, gate = (
        first_question_store("c1", "c2"),
        InMemoryAnswerCache(60),
        RecordingMeter(),
        RecordingGate(),
    )
    model = DecliningModel(["Sorry, I don't know that. ", "Shall I get you a person?"])
    pushes = [FakePush(), FakePush()]

    for conversation, push in zip(("c1", "c2"), pushes, strict=True):
        gated(cached_generator(store, model, push, answers, meter), gate).answer(job_in(conversation))

    assert model.streams == 1  # the second was reused from the cache, still marked as declined
    for conversation, push in zip(("c1", "c2"), pushes, strict=True):
        end = push.frames[-1][1]
        assert end["type"] == "answer.end" and end["citations"] == []
        assert end["text"] == "Sorry, I don't know that. Shall I get you a person?"
        stored = store.get_message(conversation, answer_id_for("0000000000002-aaaa"))
        assert stored is not None and stored.citations == []
    assert gate.grounded == [False, False]
    assert [(r.source, r.grounded) for r in meter.records] == [("model", False), ("cache", False)]


def test_an_answer_from_cited_passages_counts_as_grounded() -> None:
    store, meter, gate = first_question_store("c1"), RecordingMeter(), RecordingGate()

    gated(
        cached_generator(store, CountingModel(["Yes [1]."]), FakePush(), InMemoryAnswerCache(60), meter), gate
    ).answer(job_in("c1"))

    assert gate.grounded == [True] and meter.records[0].grounded
