"""Limits on what a public widget key can spend, checked by the message function before anything is
stored or queued (docs/protocol.md, "Limits").

Fixed-window counters: each charge adds to a counter per key and window (one second, one minute…);
over the limit, the frame is refused with ``rate_limited`` and how long until the window turns. The
counters are shared by every warm message function: in Redis when it is configured (one round trip:
a pipeline of INCRBY + EXPIRE), else in DynamoDB (an atomic ADD per counter, side by side, items gone
by TTL). While the shared store fails, each container counts on its own: a weaker bound, but the
message is not refused for it (docs/security.md).
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from shared.errors import Throttled
from shared.redis_support import Backoff, redis_client


class RateLimited(Throttled):
    code = "rate_limited"

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(message)
        self.retry_after_ms = retry_after_ms


@dataclass(frozen=True)
class Limit:
    """At most ``count`` per ``window_seconds`` for each key; ``what`` names it in the error."""

    what: str
    count: int
    window_seconds: int


@dataclass(frozen=True)
class Charge:
    key: str  # e.g. "visitor:t_1:v_abc:questions"
    limit: Limit
    cost: int = 1


class RateLimiter(ABC):
    @abstractmethod
    def counts(self, charges: list[Charge], now: float) -> list[int]:
        """Add each charge to its counter for the current window; the counters' new values."""

    def spend(self, charges: list[Charge], clock: Callable[[], float] = time.time) -> None:
        """Count the charges; raise RateLimited naming the first limit they went over."""
        charges = [c for c in charges if c.limit.count > 0]  # 0: that limit is off
        if not charges:
            return
        now = clock()
        for charge, value in zip(charges, self.counts(charges, now), strict=True):
            if value > charge.limit.count:
                window = charge.limit.window_seconds
                retry_after_ms = int((window - now % window) * 1000) + 1
                raise RateLimited(
                    f"too many {charge.limit.what}: the limit is {charge.limit.count} per "
                    f"{_duration(window)}; try again in {retry_after_ms / 1000:.1f} s",
                    retry_after_ms,
                )


def _duration(seconds: int) -> str:
    if seconds % 60 == 0:
        minutes = seconds // 60
        return "minute" if minutes == 1 else f"{minutes} minutes"
    return "second" if seconds == 1 else f"{seconds} seconds"


def _window_key(charge: Charge, now: float) -> str:
    return f"rl:{charge.key}:{int(now // charge.limit.window_seconds)}"


class InMemoryRateLimiter(RateLimiter):
    """Counters in this process (per warm container)."""

    def __init__(self) -> None:
        self._counters: dict[str, tuple[int, float]] = {}  # key -> (value, expires at)
        self._lock = threading.Lock()

    def counts(self, charges: list[Charge], now: float) -> list[int]:
        with self._lock:
            if len(self._counters) > 10_000:
                self._counters = {k: v for k, v in self._counters.items() if v[1] > now}
            values = []
            for charge in charges:
                key = _window_key(charge, now)
                value, expires = self._counters.get(key, (0, now + charge.limit.window_seconds))
                self._counters[key] = (value + charge.cost, expires)
                values.append(value + charge.cost)
            return values


class RedisRateLimiter(RateLimiter):
    """Counters in Redis, shared by every container; in ``fallback`` while Redis fails (retried after 5 s)."""

    def __init__(self, client: object, fallback: RateLimiter | None = None) -> None:
        self._client = client
        self._fallback = fallback or InMemoryRateLimiter()
        self._backoff = Backoff("rate limits fall back to DynamoDB or per-container counters", retry_after=5.0)

    @classmethod
    def from_url(cls, url: str, timeout_seconds: float, fallback: RateLimiter | None = None) -> RedisRateLimiter:
        return cls(redis_client(url, timeout_seconds), fallback)

    def counts(self, charges: list[Charge], now: float) -> list[int]:
        if self._backoff.available():
            try:
                pipeline = self._client.pipeline(transaction=False)  # type: ignore[attr-defined]
                for charge in charges:
                    key = _window_key(charge, now)
                    pipeline.incrby(key, charge.cost)
                    pipeline.expire(key, charge.limit.window_seconds + 1)
                results = pipeline.execute()
                return [int(value) for value in results[0::2]]
            except Exception as exc:  # any Redis failure: count here instead
                self._backoff.failed("rate_limits", exc)
        return self._fallback.counts(charges, now)


class DynamoRateLimiter(RateLimiter):
    """Counters in the limits table (``RateCounterModel``): an atomic ADD returns each new value."""

    def __init__(self, fallback: RateLimiter | None = None) -> None:
        self._fallback = fallback or InMemoryRateLimiter()
        self._backoff = Backoff("rate limits fall back to per-container counters", retry_after=5.0)

    def counts(self, charges: list[Charge], now: float) -> list[int]:
        if self._backoff.available():
            try:
                if len(charges) == 1:
                    return [self._add(charges[0], now)]
                return list(_POOL.map(lambda charge: self._add(charge, now), charges))
            except Exception as exc:  # any DynamoDB failure: count here instead
                self._backoff.failed("rate_limits", exc)
        return self._fallback.counts(charges, now)

    @staticmethod
    def _add(charge: Charge, now: float) -> int:
        from datetime import UTC, datetime

        from shared.state.tables import RateCounterModel

        window = charge.limit.window_seconds
        item = RateCounterModel(_window_key(charge, now))
        expires = datetime.fromtimestamp((int(now // window) + 1) * window + 60, UTC)
        item.update(actions=[RateCounterModel.hits.add(charge.cost), RateCounterModel.expires_at.set(expires)])
        return int(item.hits)


_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="limits")


@dataclass(frozen=True)
class ChatLimits:
    """The limits of the message function (Settings.rate_*; 0 turns one off)."""

    connection_frames: Limit = Limit("frames on this connection", 30, 10)
    visitor_questions: Limit = Limit("messages from this visitor", 20, 60)
    visitor_characters: Limit = Limit("characters of messages from this visitor", 20_000, 60)
    visitor_handoffs: Limit = Limit("requests for a person from this visitor", 5, 600)
    tenant_questions: Limit = Limit("messages to this tenant", 1200, 60)
    # Per network address and tenant: fresh visitor ids (one per connection) share these.
    address_questions: Limit = Limit("messages from this network address", 120, 60)
    address_handoffs: Limit = Limit("requests for a person from this network address", 10, 600)
    # New WebSocket connections per network address, whatever the tenant ($connect, before the key).
    address_connections: Limit = Limit("new connections from this network address", 60, 60)

    def for_connect(self, source_ip: str | None) -> list[Charge]:
        """What opening one connection costs (nothing when API Gateway gave no address)."""
        return [Charge(f"connect:{source_ip}", self.address_connections)] if source_ip else []

    def for_frame(
        self,
        *,
        tenant_id: str,
        visitor_id: str,
        connection_id: str,
        action: str,
        text: str | None,
        source_ip: str | None = None,
    ) -> list[Charge]:
        """What one visitor frame costs."""
        charges = [Charge(f"conn:{connection_id}", self.connection_frames)]
        visitor = f"visitor:{tenant_id}:{visitor_id}"
        address = f"ip:{tenant_id}:{source_ip}" if source_ip else None
        if action == "sendMessage":
            charges += [
                Charge(f"{visitor}:questions", self.visitor_questions),
                Charge(f"{visitor}:chars", self.visitor_characters, cost=len(text or "")),
                Charge(f"tenant:{tenant_id}:questions", self.tenant_questions),
            ]
            if address:
                charges.append(Charge(f"{address}:questions", self.address_questions))
        elif action == "requestHuman":
            charges.append(Charge(f"{visitor}:handoffs", self.visitor_handoffs))
            if address:
                charges.append(Charge(f"{address}:handoffs", self.address_handoffs))
        return charges
