"""The Redis context cache against a real redis-server that the test stops mid-conversation. (The
DynamoDB state store runs the StateStore contract: test_state_store_contract.py.)"""

from __future__ import annotations

import pytest

from local.services import RedisServer
from shared.state.cache import RedisContextCache
from tests.support.state_store_contract import visitor_message

pytestmark = pytest.mark.integration


def test_redis_cache_degrades_to_none_when_redis_dies(redis_server: RedisServer) -> None:
    cache = RedisContextCache.from_url(redis_server.url, max_messages=3, timeout_seconds=0.2)
    messages = [visitor_message("c_1", f"m{i}", f"cmid-{i}", 1000 + i) for i in range(5)]
    assert cache.recent("c_1") is None
    cache.append(messages[0])  # no list yet: appending would fake a complete history
    assert cache.recent("c_1") is None
    cache.replace("c_1", messages[:2])
    cache.append(messages[2])
    cache.append(messages[3])
    assert [m.text for m in cache.recent("c_1") or []] == ["m1", "m2", "m3"]  # trimmed to 3

    redis_server.stop()
    assert cache.recent("c_1") is None
    cache.append(messages[4])  # swallowed, logged
    cache.replace("c_1", messages)
