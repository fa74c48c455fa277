"""The answer cache in Redis, shared by every generate container: an answer is a key with a TTL; a
flight is a lock (naming the answer it is held for) and a list of live frames that followers poll.
Degrades to "no cache" on any Redis error (and skips Redis for a while after one)."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable, Iterator
from typing import Any

from shared.model.answer_cache import AnswerCache, Flight, FlightAbandoned, SoloFlight
from shared.model.answer_keys import AnswerKey
from shared.redis_support import Backoff, redis_client

_END = "\x00kefu:end"
_ABANDONED = "\x00kefu:abandoned"
_UNAVAILABLE = "\x00kefu:unavailable"
# Deletes the lock only if this leader still holds it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class RedisAnswerCache(AnswerCache):
    def __init__(
        self,
        client: Any,
        ttl_seconds: int,
        *,
        flight_seconds: float = 150.0,
        stall_seconds: float = 20.0,
        poll_seconds: float = 0.03,
        retry_after_seconds: float = 5.0,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = client
        self._ttl = ttl_seconds
        # The lock and live frames outlive the longest answer (the generate function's timeout).
        self._flight_ms = int(flight_seconds * 1000)
        self._stall = stall_seconds
        self._poll = poll_seconds
        self._sleep = sleep
        self._clock = clock
        self._backoff = Backoff("answer cache unavailable", retry_after_seconds, clock)

    @classmethod
    def from_url(cls, url: str, ttl_seconds: int, timeout_seconds: float) -> RedisAnswerCache:
        return cls(redis_client(url, timeout_seconds), ttl_seconds)

    @staticmethod
    def _key(key: AnswerKey, *suffix: str) -> str:
        return ":".join(("kefu", "answer", key.tenant_id, key.digest, *suffix))

    def get(self, key: AnswerKey) -> str | None:
        if not self._backoff.available():
            return None
        try:
            value = self._redis.get(self._key(key))
        except Exception as exc:  # any Redis failure means "not cached"
            self._backoff.failed("get", exc)
            return None
        return value if isinstance(value, str) else None

    def join(self, key: AnswerKey, owner: str = "") -> Flight:
        if not self._backoff.available():
            return SoloFlight()
        lock = self._key(key, "lock")
        # The lock's value names the answer it is held for, so a redelivery of that answer knows it.
        mine = hashlib.sha256(owner.encode()).hexdigest()[:16] + "." if owner else ""
        token = mine + secrets.token_hex(8)
        try:
            if self._redis.set(lock, token, nx=True, px=self._flight_ms):
                return _RedisLeader(self, key, token)
            holder = self._redis.get(lock)
            if mine and isinstance(holder, str) and holder.startswith(mine):
                # Our own earlier attempt: take the lock over (only if it still holds it).
                if self._redis.set(lock, token, xx=True, px=self._flight_ms):
                    return _RedisLeader(self, key, token)
                holder = self._redis.get(lock)
        except Exception as exc:
            self._backoff.failed("join", exc)
            return SoloFlight()
        if not isinstance(holder, str):
            return SoloFlight()  # the leader just finished: not worth a second round trip
        return _RedisFollower(self, self._key(key, "live", holder))

    def _run(self, operation: str, action: Callable[[], object]) -> None:
        if not self._backoff.available():
            return
        try:
            action()
        except Exception as exc:
            self._backoff.failed(operation, exc)


class _RedisLeader(Flight):
    leader = True

    def __init__(self, cache: RedisAnswerCache, key: AnswerKey, token: str) -> None:
        self._cache, self._key, self._token = cache, key, token
        self._live = cache._key(key, "live", token)
        self._ended = False

    def publish(self, text: str) -> None:
        def push() -> None:
            pipe = self._cache._redis.pipeline(transaction=False)
            pipe.rpush(self._live, text)
            pipe.pexpire(self._live, self._cache._flight_ms)
            pipe.execute()

        self._cache._run("publish", push)

    def finish(self, text: str) -> None:
        self._end(_END, text)

    def abandon(self, *, model_unavailable: bool = False) -> None:
        self._end(_UNAVAILABLE if model_unavailable else _ABANDONED, None)

    def _end(self, marker: str, text: str | None) -> None:
        if self._ended:
            return
        self._ended = True
        cache = self._cache

        def end() -> None:
            pipe = cache._redis.pipeline(transaction=False)
            if text is not None and cache._ttl > 0:
                pipe.set(cache._key(self._key), text, ex=cache._ttl)
            pipe.rpush(self._live, marker)
            pipe.pexpire(self._live, cache._flight_ms)
            pipe.eval(_RELEASE, 1, cache._key(self._key, "lock"), self._token)
            pipe.execute()

        cache._run("end", end)


class _RedisFollower(Flight):
    leader = False

    def __init__(self, cache: RedisAnswerCache, live: str) -> None:
        self._cache, self._live = cache, live

    def follow(self) -> Iterator[str]:
        cache, seen = self._cache, 0
        last_progress = cache._clock()
        while True:
            try:
                items = cache._redis.lrange(self._live, seen, -1)
            except Exception as exc:
                cache._backoff.failed("follow", exc)
                raise FlightAbandoned("the answer cache became unavailable") from None
            if items:
                last_progress = cache._clock()
                seen += len(items)
                for item in items:
                    if item == _END:
                        return
                    if item == _ABANDONED:
                        raise FlightAbandoned("the leader gave up")
                    if item == _UNAVAILABLE:
                        raise FlightAbandoned("the leader's model did not answer", model_unavailable=True)
                    yield item
                continue
            if cache._clock() - last_progress > cache._stall:
                raise FlightAbandoned(f"no progress for {cache._stall:g} s")
            cache._sleep(cache._poll)
