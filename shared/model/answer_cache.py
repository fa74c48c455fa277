"""The answer cache port: answers to repeated questions reused, and identical questions in flight shared.

While a question is being answered (the *leader*), the same question from another visitor of the
same tenant (a *follower*) does not call the model again: it streams the leader's frames as they
are sent. A flight is joined on behalf of one answer (its id): a redelivered job of the same answer
(its first attempt crashed) takes the flight over instead of following its own dead attempt.

Adapters: Redis (`answer_cache_redis.py`, shared by every generate container), this container's
memory (`answer_cache_memory.py`), none (below). Keys: `answer_keys.py`. What generation does with
a flight (ask, follow, fall back to the model): `shared/chat/answer_source.py`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator

from shared.model.answer_keys import AnswerKey


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
