"""The answer cache's keys, and the cache with in-flight sharing in memory (Redis:
tests/integration/test_answer_cache_redis.py; what generation does with a flight: test_answer_source.py)."""

from __future__ import annotations

import threading

import pytest

from shared.knowledge.base import Passage
from shared.model.answer_cache import FlightAbandoned
from shared.model.answer_cache_memory import InMemoryAnswerCache
from shared.model.answer_keys import AnswerKey, answer_key, normalise_question
from shared.model.answer_model import Turn

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


def test_the_key_changes_when_the_cited_passages_change() -> None:
    refund = Passage(document_id="refunds", title="Refunds", text="Refunds take 5 days.", score=0.9)
    rewritten = refund.model_copy(update={"text": "Refunds take 3 days."})

    def keyed(*cited: Passage) -> AnswerKey:
        return answer_key("t", "refund time?", "kv1", "m1", [], cited)

    assert keyed(refund) == keyed(refund.model_copy(update={"score": 0.5}))  # scores do not matter
    assert keyed(refund) != keyed(rewritten) != keyed()
