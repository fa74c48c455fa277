"""The Redis answer cache against a real redis-server: shared by containers, degrading when Redis dies."""

from __future__ import annotations

import threading

import pytest
import redis

from local.services import RedisServer
from shared.model.answer_cache import FlightAbandoned, SoloFlight
from shared.model.answer_cache_redis import RedisAnswerCache
from shared.model.answer_keys import answer_key

pytestmark = pytest.mark.integration

WAIT = 10  # bounds a hang only
KEY = answer_key("acme", "How long is delivery?", "kv1", "model-1", [])


def cache_on(server: RedisServer, **kwargs: object) -> RedisAnswerCache:
    client = redis.Redis.from_url(server.url, decode_responses=True, socket_timeout=0.5)
    return RedisAnswerCache(client, 60, **kwargs)  # type: ignore[arg-type]


def test_an_answer_finished_in_one_container_is_found_by_another(redis_server: RedisServer) -> None:
    one, other = cache_on(redis_server), cache_on(redis_server)
    leader = one.join(KEY)
    assert leader.leader and other.get(KEY) is None

    leader.finish("Two to four working days.")

    assert other.get(KEY) == "Two to four working days."
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    assert 0 < client.ttl("kefu:answer:acme:" + KEY.digest) <= 60
    assert client.get("kefu:answer:acme:" + KEY.digest + ":lock") is None  # released


def test_a_follower_in_another_container_streams_the_leaders_frames(redis_server: RedisServer) -> None:
    one, other = cache_on(redis_server), cache_on(redis_server, poll_seconds=0.005)
    leader = one.join(KEY)
    follower = other.join(KEY)
    assert not follower.leader
    received: list[str] = []
    first = threading.Event()

    def follow() -> None:
        for text in follower.follow():
            received.append(text)
            first.set()

    thread = threading.Thread(target=follow)
    thread.start()
    leader.publish("Two to ")
    assert first.wait(WAIT)
    leader.publish("four days.")
    leader.finish("Two to four days.")
    thread.join(WAIT)

    assert received == ["Two to ", "four days."]


def test_after_an_abandoned_flight_the_next_asker_leads_with_a_fresh_stream(redis_server: RedisServer) -> None:
    cache = cache_on(redis_server)
    first = cache.join(KEY)
    late = cache.join(KEY)
    first.publish("Two")
    first.abandon()

    pieces = late.follow()
    assert next(pieces) == "Two"
    with pytest.raises(FlightAbandoned):
        next(pieces)
    again = cache.join(KEY)
    assert again.leader
    again.finish("fresh")
    assert cache.get(KEY) == "fresh"


def test_a_redelivered_answer_takes_over_its_own_crashed_flight_in_another_container(
    redis_server: RedisServer,
) -> None:
    crashed_container, next_container = cache_on(redis_server), cache_on(redis_server)
    crashed = crashed_container.join(KEY, "c1/0001.a")
    crashed.publish("Two")  # the invocation died here: its lock would stay for the flight's lifetime

    assert not next_container.join(KEY, "c2/0002.a").leader  # another answer's identical question follows
    again = next_container.join(KEY, "c1/0001.a")
    assert again.leader
    again.finish("Two to four working days.")
    assert next_container.get(KEY) == "Two to four working days."
    crashed.abandon()  # a late word from the dead attempt releases nothing it no longer holds
    assert crashed_container.get(KEY) == "Two to four working days."


def test_a_follower_learns_that_the_leaders_model_never_answered(redis_server: RedisServer) -> None:
    cache = cache_on(redis_server)
    first = cache.join(KEY)
    late = cache.join(KEY)
    first.abandon(model_unavailable=True)

    with pytest.raises(FlightAbandoned) as raised:
        next(late.follow())
    assert raised.value.model_unavailable
    assert cache.get(KEY) is None


def test_tenants_never_share_answers(redis_server: RedisServer) -> None:
    cache = cache_on(redis_server)
    cache.join(KEY).finish("Acme's answer")

    other_tenant = answer_key("globex", "How long is delivery?", "kv1", "model-1", [])
    assert cache.get(other_tenant) is None
    assert cache.join(other_tenant).leader


def test_a_dead_redis_means_no_cache_not_a_failure() -> None:
    server = RedisServer().start()
    cache = cache_on(server)
    server.stop()

    assert cache.get(KEY) is None
    flight = cache.join(KEY)
    assert isinstance(flight, SoloFlight)
    flight.publish("x")
    flight.finish("x")  # no error
