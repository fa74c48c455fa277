"""The answer cache and in-flight sharing, in memory (Redis: tests/integration/test_answer_cache_redis.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from shared.errors import UpstreamError
from shared.knowledge.base import Passage
from shared.model.answer_cache import (
    AnswerKey,
    AnswerSource,
    FlightAbandoned,
    InMemoryAnswerCache,
    NoAnswerCache,
    answer_key,
    normalise_question,
)
from shared.model.answer_model import AnswerStream, ModelUsage, Turn

WAIT = 10  # bounds a hang only


def key(
    question: str = "How long is delivery?", version: str = "v1", model: str = "m1", tenant: str = "t"
) -> AnswerKey:
    return answer_key(tenant, question, version, model, [])


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("How long is delivery?", "  how LONG is   delivery "),
        ("退款多久到账？", "退款多久到账"),
        ("Ｒｅｆｕｎｄ？", "refund"),
    ],
)
def test_questions_that_differ_only_in_case_space_width_or_end_punctuation_share_a_key(a: str, b: str) -> None:
    assert normalise_question(a) == normalise_question(b)
    assert key(a) == key(b)


def test_the_key_changes_with_tenant_knowledge_version_model_and_conversation() -> None:
    base = key()
    assert key(tenant="other") != base
    assert key(version="v2") != base
    assert key(model="m2") != base
    assert answer_key("t", "How long is delivery?", "v1", "m1", [Turn(role="visitor", text="hi")]) != base
    assert key("How long is a refund?") != base


def test_a_finished_answer_is_cached_until_its_ttl() -> None:
    now = [0.0]
    cache = InMemoryAnswerCache(ttl_seconds=60, clock=lambda: now[0])
    flight = cache.join(key())
    assert flight.leader and cache.get(key()) is None

    flight.finish("Two days.")

    assert cache.get(key()) == "Two days."
    now[0] = 61
    assert cache.get(key()) is None


def test_an_abandoned_answer_is_not_cached_and_the_next_asker_leads() -> None:
    cache = InMemoryAnswerCache(ttl_seconds=60)
    cache.join(key()).abandon()

    assert cache.get(key()) is None
    assert cache.join(key()).leader


def test_a_redelivered_answer_takes_over_its_own_crashed_flight_and_others_still_follow() -> None:
    cache = InMemoryAnswerCache(ttl_seconds=60)
    crashed = cache.join(key(), "c1/0001.a")
    crashed.publish("Two")  # then the invocation died: nobody will finish this flight

    assert not cache.join(key(), "c2/0002.a").leader  # another visitor's identical question follows
    again = cache.join(key(), "c1/0001.a")  # the same answer, redelivered: it leads afresh
    assert again.leader
    again.finish("Two to four working days.")
    assert cache.get(key()) == "Two to four working days."


def test_the_cache_keeps_at_most_max_entries() -> None:
    cache = InMemoryAnswerCache(ttl_seconds=60, max_entries=2)
    for question in ("a?", "b?", "c?"):
        cache.join(key(question)).finish(question)

    assert cache.get(key("a?")) is None and cache.get(key("c?")) == "c?"


def test_a_follower_streams_the_leaders_frames_as_they_come() -> None:
    cache = InMemoryAnswerCache(ttl_seconds=60)
    leader = cache.join(key())
    follower = cache.join(key())
    assert leader.leader and not follower.leader
    received: list[str] = []
    started = threading.Event()

    def follow() -> None:
        for text in follower.follow():
            received.append(text)
            started.set()

    thread = threading.Thread(target=follow)
    leader.publish("Two ")
    thread.start()
    assert started.wait(WAIT)
    leader.publish("days.")
    leader.finish("Two days.")
    thread.join(WAIT)

    assert received == ["Two ", "days."]


def test_a_follower_learns_that_the_leader_gave_up() -> None:
    cache = InMemoryAnswerCache(ttl_seconds=60)
    leader, follower = cache.join(key()), cache.join(key())
    leader.publish("Two")
    leader.abandon()

    pieces = follower.follow()
    assert next(pieces) == "Two"
    with pytest.raises(FlightAbandoned):
        next(pieces)


def test_a_silent_leader_is_given_up_after_the_stall_limit() -> None:
    cache = InMemoryAnswerCache(ttl_seconds=60, stall_seconds=0.01)
    cache.join(key())

    with pytest.raises(FlightAbandoned, match="no progress"):
        list(cache.join(key()).follow())


# --- AnswerSource: where one answer's text comes from ---


class Model:
    def __init__(self, pieces: list[str]) -> None:
        self.pieces = pieces
        self.asked = 0

    def __call__(self) -> Iterator[str]:
        self.asked += 1
        return AnswerStream(iter(self.pieces), ModelUsage(provider="openai", model="m", output_tokens=len(self.pieces)))


def test_without_a_key_the_model_is_asked_and_nothing_is_shared() -> None:
    model = Model(["a", "b"])
    source = AnswerSource(InMemoryAnswerCache(60), None, model)

    assert "".join(source.pieces) == "ab" and source.origin == "model"
    assert source.usage is not None and source.usage.output_tokens == 2


def test_a_cached_answer_streams_in_several_pieces_without_asking_the_model() -> None:
    cache, model = InMemoryAnswerCache(60), Model(["unused"])
    cache.join(key()).finish("You can return any item within 30 days.")

    source = AnswerSource(cache, key(), model)
    pieces = list(source.pieces)

    assert "".join(pieces) == "You can return any item within 30 days." and len(pieces) > 3
    assert source.origin == "cache" and model.asked == 0 and source.usage is None


def test_a_second_identical_question_follows_the_first_instead_of_asking_the_model() -> None:
    cache, model = InMemoryAnswerCache(60), Model(["x"])
    first = AnswerSource(cache, key(), Model(["Two ", "days."]))
    second = AnswerSource(cache, key(), model)
    assert first.origin == "model" and second.origin == "shared"

    for piece in first.pieces:
        first.published(piece)  # what the generator does as each frame is sent
    first.finish("Two days.")

    assert "".join(second.pieces) == "Two days." and model.asked == 0


def test_a_follower_asks_the_model_itself_when_the_leader_fails_before_any_text() -> None:
    cache, model = InMemoryAnswerCache(60), Model(["own ", "answer"])
    first = AnswerSource(cache, key(), Model(["x"]))
    second = AnswerSource(cache, key(), model)

    first.abandon()

    assert "".join(second.pieces) == "own answer" and model.asked == 1 and second.origin == "model"


def test_a_follower_that_already_showed_text_fails_when_the_leader_breaks_off() -> None:
    cache = InMemoryAnswerCache(60)
    first, second = AnswerSource(cache, key(), Model(["x"])), AnswerSource(cache, key(), Model(["y"]))
    first.published("Two ")
    first.abandon()

    pieces = second.pieces
    assert next(pieces) == "Two "
    with pytest.raises(UpstreamError, match="broke off"):
        next(pieces)


def test_no_cache_always_asks_the_model() -> None:
    model = Model(["a"])
    for _ in range(2):
        source = AnswerSource(NoAnswerCache(), key(), model)
        assert "".join(source.pieces) == "a"
        source.finish("a")
    assert model.asked == 2


def test_the_key_changes_when_the_cited_passages_change() -> None:
    refund = Passage(document_id="refunds", title="Refunds", text="Refunds take 5 days.", score=0.9)
    rewritten = refund.model_copy(update={"text": "Refunds take 3 days."})

    def keyed(*cited: Passage) -> AnswerKey:
        return answer_key("t", "refund time?", "kv1", "m1", [], cited)

    assert keyed(refund) == keyed(refund.model_copy(update={"score": 0.5}))  # scores do not matter
    assert keyed(refund) != keyed(rewritten) != keyed()


class DecliningModel(Model):
    """A model whose reply carried the no-answer marker: its usage says so once the pieces are read."""

    def __call__(self) -> Iterator[str]:
        self.asked += 1
        usage = ModelUsage(provider="openai", model="m")

        def pieces() -> Iterator[str]:
            yield from self.pieces
            usage.declined = True

        return AnswerStream(pieces(), usage)


def test_a_declined_answer_stays_declined_when_followed_or_reused_and_its_marker_is_never_shown() -> None:
    cache = InMemoryAnswerCache(60)
    leader = AnswerSource(cache, key(), DecliningModel(["Sorry, ", "I don't know."]))
    follower = AnswerSource(cache, key(), Model(["unused"]))
    for piece in leader.pieces:
        leader.published(piece)
    leader.finish("Sorry, I don't know.")
    followed = "".join(follower.pieces)
    reused = AnswerSource(cache, key(), Model(["unused"]))

    assert (leader.origin, follower.origin, reused.origin) == ("model", "shared", "cache")
    assert followed == "".join(reused.pieces) == "Sorry, I don't know."
    assert leader.declined and follower.declined and reused.declined


def test_an_answer_the_model_did_not_decline_is_not_declined_anywhere() -> None:
    cache = InMemoryAnswerCache(60)
    leader = AnswerSource(cache, key(), Model(["Two ", "days."]))
    follower = AnswerSource(cache, key(), Model(["unused"]))
    for piece in leader.pieces:
        leader.published(piece)
    leader.finish("Two days.")
    "".join(follower.pieces)

    assert not leader.declined and not follower.declined and not AnswerSource(cache, key(), Model([])).declined
