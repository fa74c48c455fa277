"""The answer gate inside the real Generator: no bot answer while people own the conversation, a
handoff mid-answer drops it, and N answers without a source in a row hand the conversation off."""

from collections.abc import Iterator

from shared.chat.gate import HandoffGate
from shared.chat.generation import Generator
from shared.knowledge.base import Passage
from shared.model.answer_model import Answer, AnswerModel, Turn
from shared.model.gateway import FixedModelGateway
from shared.state.records import StatusChange, StoredMessage, answer_id_for
from shared.wire.jobs import GenerateJob
from tests.unit.fakes import FakeAnswerModel, FakeRetriever
from tests.unit.handoff_support import Desk

PASSAGE = Passage(document_id="ship", title="Shipping", text="2-4 days.", url="https://x/s", score=0.9)


def visitor_message(desk: Desk, message_id: str, text: str = "how long?") -> GenerateJob:
    desk.store.messages[("c_1", message_id)] = StoredMessage(
        conversation_id="c_1", message_id=message_id, tenant_id="t_1", role="visitor", text=text, created_at=1
    )
    return GenerateJob(
        tenant_id="t_1",
        conversation_id="c_1",
        message_id=message_id,
        connection_id="v-tab",
        callback_url="https://d/s",
        text=text,
    )


def generator(desk: Desk, model: AnswerModel, passages: list[Passage], gate: HandoffGate) -> Generator:
    return Generator(
        store=desk.store,
        cache=desk.cache,
        retriever=FakeRetriever(passages),
        models=FixedModelGateway(model, identity="default"),
        push_for=lambda url: desk.push,
        history_turns=10,
        top_k=4,
        flush_ms=0,
        flush_chars=400,
        gate=gate,
    )


def gate(desk: Desk, recheck_seconds: float = 0.0) -> HandoffGate:
    return HandoffGate(desk.store, lambda url: desk.push, recheck_seconds=recheck_seconds)


def test_the_bot_answers_while_it_owns_the_conversation() -> None:
    desk = Desk()
    desk.conversation()
    job = visitor_message(desk, "0000000000001-aaaa")
    outcome = generator(desk, FakeAnswerModel(["2-4 ", "days."]), [PASSAGE], gate(desk)).answer(job)
    assert outcome == "answered" and desk.types("v-tab")[-1] == "answer.end"


def test_no_answer_at_all_while_queued_or_assigned() -> None:
    for status in ("queued", "assigned"):
        desk = Desk()
        desk.conversation(status=status)
        job = visitor_message(desk, "0000000000001-aaaa")
        model = FakeAnswerModel(["never"])
        outcome = generator(desk, model, [PASSAGE], gate(desk)).answer(job)
        assert outcome == "not-bot-owned"
        assert desk.push.frames == [] and model.consumed == 0
        assert desk.store.get_message("c_1", answer_id_for(job.message_id)) is None


class HandoffWhileStreaming(AnswerModel):
    """Streams slowly; an agent takes the conversation after the second piece."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.consumed = 0
        self.closed = False

    def plan(self, question: str, passages: list[Passage]) -> Answer:
        return Answer(citations=passages)

    def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
        try:
            for i in range(20):
                if i == 2:
                    conversation = self.desk.store.conversations["c_1"]
                    self.desk.store.change_status(
                        conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"}))
                    )
                self.consumed += 1
                yield f"piece {i} "
        finally:
            self.closed = True


def test_a_handoff_mid_answer_stops_it_and_nothing_is_stored_or_ended() -> None:
    desk = Desk()
    desk.conversation()
    job = visitor_message(desk, "0000000000001-aaaa")
    model = HandoffWhileStreaming(desk)

    outcome = generator(desk, model, [PASSAGE], gate(desk)).answer(job)

    assert outcome == "dropped-handoff"
    assert model.closed and model.consumed < 20  # the model stream was closed early
    types = desk.types("v-tab")
    assert "answer.end" not in types and types[-1] == "answer.cancelled"
    assert desk.frames("v-tab", "answer.cancelled")[0]["messageId"] == answer_id_for(job.message_id)
    assert desk.store.get_message("c_1", answer_id_for(job.message_id)) is None


def test_a_handoff_after_the_last_piece_still_drops_the_answer() -> None:
    """The re-check right before storing catches a handoff that the throttled mid-stream check missed."""
    desk = Desk()
    desk.conversation()
    job = visitor_message(desk, "0000000000001-aaaa")

    class HandoffAtTheEnd(FakeAnswerModel):
        def stream(self, question: str, answer: Answer, history: list[Turn]) -> Iterator[str]:
            yield from super().stream(question, answer, history)
            conversation = desk.store.conversations["c_1"]
            desk.store.change_status(conversation, StatusChange(status="queued", from_statuses=frozenset({"bot"})))

    outcome = generator(desk, HandoffAtTheEnd(["a ", "b"]), [PASSAGE], gate(desk, recheck_seconds=60)).answer(job)

    assert outcome == "dropped-handoff"
    assert "answer.end" not in desk.types("v-tab")
    assert desk.store.get_message("c_1", answer_id_for(job.message_id)) is None


def test_mid_stream_checks_are_throttled() -> None:
    desk = Desk()
    desk.conversation()
    reads = []
    original = desk.store.get_conversation
    desk.store.get_conversation = lambda cid: reads.append(cid) or original(cid)  # type: ignore[method-assign]
    job = visitor_message(desk, "0000000000001-aaaa")
    generator(desk, FakeAnswerModel([f"p{i} " for i in range(30)]), [PASSAGE], gate(desk, recheck_seconds=60)).answer(
        job
    )
    assert len(reads) == 2  # before and after: not one read per frame


def test_answers_without_a_source_n_times_in_a_row_hand_off() -> None:
    desk = Desk()
    desk.configure(no_answer_threshold=2)
    desk.agent("a_1", "Alice")
    desk.conversation()
    unknown = FakeAnswerModel(["Sorry, I could not find that."])

    first = generator(desk, unknown, [], gate(desk)).answer(visitor_message(desk, "0000000000001-aaaa"))
    assert first == "answered" and desk.status() == "bot"
    generator(desk, unknown, [], gate(desk)).answer(visitor_message(desk, "0000000000003-aaaa"))

    conversation = desk.store.conversations["c_1"]
    assert conversation.status == "assigned" and conversation.handoff_reason == "no_answer"
    # The visitor sees the bot's answer end first, then the handoff.
    types = desk.types("v-tab")
    assert types.index("answer.end") < types.index("conversation.status")


def test_a_good_answer_resets_the_count() -> None:
    desk = Desk()
    desk.configure(no_answer_threshold=2)
    desk.conversation()
    unknown, known = FakeAnswerModel(["Sorry."]), FakeAnswerModel(["2-4 days."])
    generator(desk, unknown, [], gate(desk)).answer(visitor_message(desk, "0000000000001-aaaa"))
    generator(desk, known, [PASSAGE], gate(desk)).answer(visitor_message(desk, "0000000000003-aaaa"))
    generator(desk, unknown, [], gate(desk)).answer(visitor_message(desk, "0000000000005-aaaa"))
    assert desk.status() == "bot" and desk.store.conversations["c_1"].no_answer_streak == 1


def test_threshold_zero_never_hands_off() -> None:
    desk = Desk()
    desk.configure(no_answer_threshold=0)
    desk.conversation()
    for i in range(4):
        generator(desk, FakeAnswerModel(["Sorry."]), [], gate(desk)).answer(visitor_message(desk, f"000000000000{i}-a"))
    assert desk.status() == "bot"
