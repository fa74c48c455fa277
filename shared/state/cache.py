"""Hot cache of each conversation's recent turns. DynamoDB stays the source of truth.

Every cache failure degrades to "no cache": the caller reads DynamoDB instead, so a Redis outage
costs latency, never a message.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from shared.redis_support import Backoff, redis_client
from shared.state.records import StoredMessage


class ContextCache(ABC):
    @abstractmethod
    def recent(self, conversation_id: str) -> list[StoredMessage] | None:
        """Cached recent messages, oldest first; None when absent or the cache is unavailable."""

    @abstractmethod
    def append(self, message: StoredMessage) -> None:
        """Add one message at the end (best effort)."""

    @abstractmethod
    def replace(self, conversation_id: str, messages: list[StoredMessage]) -> None:
        """Set the cached messages from the durable store (best effort)."""


class NoCache(ContextCache):
    """Used when no Redis is configured."""

    def recent(self, conversation_id: str) -> list[StoredMessage] | None:
        return None

    def append(self, message: StoredMessage) -> None:
        return None

    def replace(self, conversation_id: str, messages: list[StoredMessage]) -> None:
        return None


class RedisContextCache(ContextCache):
    def __init__(
        self,
        client: Any,
        max_messages: int,
        ttl_seconds: int = 24 * 3600,
        retry_after_seconds: float = 5.0,
    ) -> None:
        self._redis = client
        self._max = max(max_messages, 1)
        self._ttl = ttl_seconds
        self._backoff = Backoff("redis unavailable; using DynamoDB", retry_after_seconds)

    @classmethod
    def from_url(cls, url: str, max_messages: int, timeout_seconds: float) -> RedisContextCache:
        return cls(redis_client(url, timeout_seconds), max_messages)

    @staticmethod
    def _key(conversation_id: str) -> str:
        return f"kefu:conv:{conversation_id}:recent"

    def recent(self, conversation_id: str) -> list[StoredMessage] | None:
        if not self._backoff.available():
            return None
        try:
            raw = self._redis.lrange(self._key(conversation_id), 0, -1)
        except Exception as exc:  # any Redis failure means "no cache"
            self._backoff.failed("recent", exc)
            return None
        if not raw:
            return None
        try:
            return [StoredMessage.model_validate(json.loads(item)) for item in raw]
        except ValueError:
            return None

    def append(self, message: StoredMessage) -> None:
        if not self._backoff.available():
            return
        key = self._key(message.conversation_id)
        try:
            # Only extend a list that exists: appending to a missing key would make a partial history
            # look complete.
            if self._redis.rpushx(key, message.model_dump_json()):
                pipe = self._redis.pipeline(transaction=True)
                pipe.ltrim(key, -self._max, -1)
                pipe.expire(key, self._ttl)
                pipe.execute()
        except Exception as exc:
            self._backoff.failed("append", exc)

    def replace(self, conversation_id: str, messages: list[StoredMessage]) -> None:
        if not self._backoff.available():
            return
        key = self._key(conversation_id)
        try:
            pipe = self._redis.pipeline(transaction=True)
            pipe.delete(key)
            if messages:
                pipe.rpush(key, *(m.model_dump_json() for m in messages[-self._max :]))
                pipe.expire(key, self._ttl)
            pipe.execute()
        except Exception as exc:
            self._backoff.failed("replace", exc)
