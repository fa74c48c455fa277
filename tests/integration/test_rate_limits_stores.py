"""Rate-limit counters on a real redis-server and on DynamoDB (moto server): containers share them;
with the store gone each container counts on its own instead of failing the message."""

from __future__ import annotations

import pytest
import redis

from local.services import RedisServer
from shared.chat.rate_limits import Charge, DynamoRateLimiter, Limit, RateLimited, RedisRateLimiter
from shared.settings import Settings

pytestmark = pytest.mark.integration

QUESTIONS = Limit("messages from this visitor", 3, 60)


def test_two_containers_share_one_budget(redis_server: RedisServer) -> None:
    one = RedisRateLimiter(redis.Redis.from_url(redis_server.url))
    other = RedisRateLimiter(redis.Redis.from_url(redis_server.url))
    charge = Charge("visitor:t_shared:v_1:questions", QUESTIONS)
    one.spend([charge])
    other.spend([charge])
    one.spend([charge])
    with pytest.raises(RateLimited):
        other.spend([charge])
    keys = redis.Redis.from_url(redis_server.url, decode_responses=True).keys("rl:visitor:t_shared:*")
    [key] = keys
    assert 0 < redis.Redis.from_url(redis_server.url).ttl(key) <= 61  # counters expire with their window


def test_without_redis_each_container_still_counts() -> None:
    unreachable = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, socket_timeout=0.2)
    limiter = RedisRateLimiter(unreachable)
    charge = Charge("visitor:t_down:v_1:questions", QUESTIONS)
    # One instant in the middle of a window: the wall clock could turn the minute between two spends
    # (each may wait for the unreachable Redis), and a new window rightly starts a new count.
    middle = (1_700_000_000 // 60) * 60 + 30.0
    for _ in range(3):
        limiter.spend([charge], clock=lambda: middle)
    with pytest.raises(RateLimited):
        limiter.spend([charge], clock=lambda: middle)
    # The same spends a window later start afresh (the count is per window, not for ever).
    limiter.spend([charge], clock=lambda: middle + 60)


def test_without_redis_the_counters_live_in_dynamodb(settings: Settings) -> None:
    from shared.state.tables import RateCounterModel, bind_models

    bind_models(settings)
    one, other = DynamoRateLimiter(), DynamoRateLimiter()  # two message function containers
    charge = Charge("visitor:t_dynamo:v_1:questions", QUESTIONS)
    tenant = Charge("tenant:t_dynamo:questions", Limit("messages to this tenant", 100, 60))
    one.spend([charge, tenant])
    other.spend([charge, tenant])
    one.spend([charge, tenant])
    with pytest.raises(RateLimited):
        other.spend([charge, tenant])
    counters = {item.counter_key: int(item.hits) for item in RateCounterModel.scan()}
    assert sorted(counters.values()) == [4, 4] and all(k.startswith("rl:") for k in counters)
    assert all(item.expires_at is not None for item in RateCounterModel.scan())  # gone by TTL
