"""Answers to repeated questions, reused: an answer cache, and identical questions in flight shared.

Key: (tenant, normalised question, knowledge version, model identity, earlier turns, cited
passages). The knowledge version changes with any change to the tenant's knowledge, the model
identity with any change to its model settings, and the cited passages with retrieval settings, so a
cached answer is never staler than what a fresh one would say. Earlier
turns are part of the key because a model answers a follow-up from the conversation ("and how much
is it?"); in practice the reused answers are those to first questions.

While a question is being answered (the *leader*), the same question from another visitor of the
same tenant (a *follower*) does not call the model again: it streams the leader's frames as they
are sent. If the leader gives up before the follower saw any text, the follower asks the model
itself. A flight is joined on behalf of one answer (its id): a redelivered job of the same answer
(its first attempt crashed) takes the flight over instead of following its own dead attempt. Cached
and shared answers go through the same frame coalescer as fresh ones, so they stream like fresh ones.

Two stores: Redis when configured (shared by every generate container; degrades to "no cache" on any
Redis error), else in this container's memory.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import threading
import time
import unicodedata
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from shared.errors import UpstreamError
from shared.knowledge.base import Passage
from shared.model.answer_model import ModelUsage, Turn, close_stream
from shared.model.language import split_into_pieces
from shared.observability import logger
from shared.redis_support import Backoff, redis_client

# Punctuation and spaces around a question do not change it: "Refund time?" == "refund time".
_EDGES = re.compile(r"^[\s\W_]+|[\s\W_]+$", re.UNICODE)
_SPACES = re.compile(r"\s+")


def normalise_question(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _SPACES.sub(" ", _EDGES.sub("", folded)).strip()


@dataclass(frozen=True)
class AnswerKey:
    tenant_id: str
    digest: str


def answer_key(
    tenant_id: str,
    question: str,
    knowledge_version: str,
    model_identity: str,
    history: list[Turn],
    cited: Sequence[Passage] = (),
) -> AnswerKey:
    """``cited``: the passages the answer is written from; a retrieval setting that changes them
    (keyword weight, threshold, reranking) changes the key even when the knowledge did not change."""
    document = {
        "q": normalise_question(question),
        "k": knowledge_version,
        "m": model_identity,
        "h": [[turn.role, normalise_question(turn.text)] for turn in history],
        "p": [[p.document_id, hashlib.sha256(p.text.encode()).hexdigest()[:12]] for p in cited],
    }
    digest = hashlib.sha256(json.dumps(document, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:32]
    return AnswerKey(tenant_id=tenant_id, digest=digest)


class FlightAbandoned(Exception):
    """The leader gave up (failed, the visitor left) or went silent for too long. ``model_unavailable``:
    the leader's model gave no first token within its budget (asking it again now would make the
    follower wait a second budget)."""

    def __init__(self, message: str, *, model_unavailable: bool = False) -> None:
        super().__init__(message)
        self.model_unavailable = model_unavailable


class Flight:
    """One answer being produced: the leader publishes, followers follow. The defaults do nothing."""

    leader: bool

    def publish(self, text: str) -> None:
        """Leader: a frame with this text was sent."""
        return None

    def finish(self, text: str) -> None:
        """Leader: the answer is complete (and may be cached)."""
        return None

    def abandon(self, *, model_unavailable: bool = False) -> None:
        """Leader: no complete answer will come (``model_unavailable``: no first token came)."""
        return None

    def follow(self) -> Iterator[str]:
        """Follower: the leader's frames as they come; raises FlightAbandoned."""
        raise FlightAbandoned("not a follower")


class SoloFlight(Flight):
    """A leader nobody follows (no cache, or the cache is unavailable)."""

    leader = True


class AnswerCache(ABC):
    @abstractmethod
    def get(self, key: AnswerKey) -> str | None: ...

    @abstractmethod
    def join(self, key: AnswerKey, owner: str = "") -> Flight:
        """Lead the flight of ``key``, or follow it. ``owner``: the answer this is for; a flight
        already led for the same owner is an earlier attempt of this very answer (a crashed
        invocation, redelivered), which nobody will finish: it is taken over, not followed."""


class NoAnswerCache(AnswerCache):
    def get(self, key: AnswerKey) -> str | None:
        return None

    def join(self, key: AnswerKey, owner: str = "") -> Flight:
        return SoloFlight()


# --- in this container's memory ---


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


# --- Redis, shared by every container ---

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


# --- where one answer's text comes from ---


# Stored before the text of an answer the model declined (no_answer.py), so a reused answer still
# counts as having no good source.
_DECLINED = "\x00kefu:declined\x00"


class AnswerSource:
    """The pieces of one answer and where they come from: ``origin`` is "cache" (a cached answer),
    "shared" (an identical question answered right now) or "model" (asked fresh, and shared with
    followers). ``usage`` is the model's, when it was asked; ``declined`` whether the model said the
    passages do not answer the question (known once the pieces are consumed)."""

    def __init__(
        self, cache: AnswerCache, key: AnswerKey | None, ask: Callable[[], Iterator[str]], owner: str = ""
    ) -> None:
        self._ask = ask
        self._cache, self._key = cache, key
        self._stream: Iterator[str] | None = None
        self._flight: Flight = SoloFlight()
        self._stored_declined: bool | None = None
        self.origin = "model"
        cached = cache.get(key) if key is not None else None
        if cached is not None:
            self.origin = "cache"
            self._stored_declined = cached.startswith(_DECLINED)
            self.pieces: Iterator[str] = iter(split_into_pieces(cached.removeprefix(_DECLINED)))
            return
        if key is not None:
            self._flight = cache.join(key, owner)
        if self._flight.leader:
            self.pieces = self._fresh()
        else:
            self.origin = "shared"
            self.pieces = self._follow()

    @property
    def usage(self) -> ModelUsage | None:
        usage = getattr(self._stream, "usage", None)
        return usage if isinstance(usage, ModelUsage) else None

    @property
    def declined(self) -> bool:
        if self.origin == "model":
            return bool(self.usage and self.usage.declined)
        if self._stored_declined is None and self._key is not None:
            # A follower: the leader stored its answer (marked) before ending the flight.
            stored = self._cache.get(self._key)
            self._stored_declined = stored is not None and stored.startswith(_DECLINED)
        return bool(self._stored_declined)

    def _fresh(self) -> Iterator[str]:
        self._stream = self._ask()
        try:
            yield from self._stream
        finally:
            close_stream(self._stream)

    def _follow(self) -> Iterator[str]:
        shown = False
        try:
            for piece in self._flight.follow():
                shown = True
                yield piece
            return
        except FlightAbandoned as exc:
            if shown:
                raise UpstreamError(f"the shared answer broke off: {exc}") from None
            if exc.model_unavailable:
                # The same model just spent its whole budget on this question: not a second one.
                raise UpstreamError(f"the shared answer never started: {exc}") from None
            logger.info("shared answer abandoned; asking the model", extra={"reason": str(exc)})
        self.origin = "model"
        self._flight = SoloFlight()
        yield from self._fresh()

    def published(self, text: str) -> None:
        if self._flight.leader:
            self._flight.publish(text)

    def finish(self, text: str) -> None:
        if self._flight.leader:
            self._flight.finish(_DECLINED + text if self.declined else text)

    def abandon(self, *, model_unavailable: bool = False) -> None:
        if self._flight.leader:
            self._flight.abandon(model_unavailable=model_unavailable)
