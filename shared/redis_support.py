"""What every Redis user in kefu shares: one client per URL, and backing off after a failure.

Redis is only ever a cache here, so a failure must cost one short timeout, not one per call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from shared.observability import logger


@lru_cache(maxsize=4)
def redis_client(url: str, timeout_seconds: float) -> Any:
    """A client (and its connection pool) per URL, shared by the caches of a warm container."""
    import redis  # imported only when a cache is configured

    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_seconds,
        socket_connect_timeout=timeout_seconds,
        retry_on_timeout=False,
        decode_responses=True,
    )


class Backoff:
    """After a failure, skip the dependency for ``retry_after`` seconds instead of paying its timeout again."""

    def __init__(self, what: str, retry_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._what = what
        self._retry_after = retry_after
        self._clock = clock
        self._down_until = 0.0

    def available(self) -> bool:
        return self._clock() >= self._down_until

    def failed(self, operation: str, exc: Exception) -> None:
        self._down_until = self._clock() + self._retry_after
        logger.warning(self._what, extra={"operation": operation, "error": str(exc)})
