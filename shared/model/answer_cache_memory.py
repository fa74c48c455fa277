"""The answer cache in this container's memory (when no Redis is configured): answers kept until
their TTL (least recently used dropped past ``max_entries``), flights shared between threads."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator

from shared.model.answer_cache import AnswerCache, Flight, FlightAbandoned
from shared.model.answer_keys import AnswerKey


class _MemoryFlight:
    def __init__(self, owner: str = "") -> None:
        self.owner = owner
        self.parts: list[str] = []
        self.state = "running"
        self.condition = threading.Condition()


class _MemoryLeader(Flight):
    leader = True

    def __init__(self, cache: InMemoryAnswerCache, key: AnswerKey, flight: _MemoryFlight) -> None:
        self._cache, self._key, self._flight = cache, key, flight

    def publish(self, text: str) -> None:
        with self._flight.condition:
            self._flight.parts.append(text)
            self._flight.condition.notify_all()

    def finish(self, text: str) -> None:
        self._cache._store(self._key, text)
        self._end("done")

    def abandon(self, *, model_unavailable: bool = False) -> None:
        self._end("unavailable" if model_unavailable else "abandoned")

    def _end(self, state: str) -> None:
        with self._flight.condition:
            if self._flight.state != "running":
                return
            self._flight.state = state
            self._flight.condition.notify_all()
        self._cache._land(self._key, self._flight)


class _MemoryFollower(Flight):
    leader = False

    def __init__(self, flight: _MemoryFlight, stall_seconds: float) -> None:
        self._flight, self._stall = flight, stall_seconds

    def follow(self) -> Iterator[str]:
        flight, seen = self._flight, 0
        while True:
            with flight.condition:
                while seen >= len(flight.parts) and flight.state == "running":
                    if not flight.condition.wait(timeout=self._stall):
                        raise FlightAbandoned(f"no progress for {self._stall:g} s")
                new, state = flight.parts[seen:], flight.state
                seen = len(flight.parts)
            yield from new
            if state == "abandoned":
                raise FlightAbandoned("the leader gave up")
            if state == "unavailable":
                raise FlightAbandoned("the leader's model did not answer", model_unavailable=True)
            if state == "done" and seen >= len(flight.parts):
                return


class InMemoryAnswerCache(AnswerCache):
    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = 2000,
        stall_seconds: float = 20.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl_seconds
        self._max = max_entries
        self._stall = stall_seconds
        self._clock = clock
        self._answers: OrderedDict[AnswerKey, tuple[str, float]] = OrderedDict()
        self._flights: dict[AnswerKey, _MemoryFlight] = {}
        self._lock = threading.Lock()

    def get(self, key: AnswerKey) -> str | None:
        with self._lock:
            entry = self._answers.get(key)
            if entry is None:
                return None
            if self._clock() >= entry[1]:
                del self._answers[key]
                return None
            self._answers.move_to_end(key)
            return entry[0]

    def join(self, key: AnswerKey, owner: str = "") -> Flight:
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None and not (owner and flight.owner == owner):
                return _MemoryFollower(flight, self._stall)
            flight = self._flights[key] = _MemoryFlight(owner)
        return _MemoryLeader(self, key, flight)

    def _store(self, key: AnswerKey, text: str) -> None:
        if self._ttl <= 0:
            return
        with self._lock:
            self._answers[key] = (text, self._clock() + self._ttl)
            self._answers.move_to_end(key)
            while len(self._answers) > self._max:
                self._answers.popitem(last=False)

    def _land(self, key: AnswerKey, flight: _MemoryFlight) -> None:
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
