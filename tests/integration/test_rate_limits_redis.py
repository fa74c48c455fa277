"""Rate limits on a real redis-server: containers share the counters; with Redis gone each counts on
its own instead of failing the message."""

from __future__ import annotations

import pytest
import redis

from local.services import RedisServer
from shared.chat.rate_limits import Charge, Limit, RateLimited, RedisRateLimiter

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
    for _ in range(3):
        limiter.spend([charge])
    with pytest.raises(RateLimited):
        limiter.spend([charge])
