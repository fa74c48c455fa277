"""Small shared state the channels need across containers: access tokens and their refresh lock,
WeCom pull cursors, reply windows, seen platform message ids.

It must live in one shared place, never per container: refreshing a WeChat access token invalidates
the previous one, and a cursor read twice answers a customer twice. The port is a tiny key-value store
with conditional writes; ``DynamoChannelState`` keeps it in the limits table (``chan:`` keys, gone by TTL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class ChannelState(ABC):
    @abstractmethod
    def get(self, key: str) -> dict[str, Any] | None:
        """The value under ``key``, or None when absent or expired."""

    @abstractmethod
    def put(self, key: str, value: dict[str, Any], ttl_seconds: float) -> None:
        """Set ``key`` unconditionally (it expires after ``ttl_seconds``)."""

    @abstractmethod
    def put_if_absent(self, key: str, value: dict[str, Any], ttl_seconds: float) -> bool:
        """Set ``key`` only when it is absent or expired; True when this call set it (a lock, a first sighting)."""

    @abstractmethod
    def put_if_version(self, key: str, value: dict[str, Any], version: int | None, ttl_seconds: float) -> bool:
        """Set ``key`` to ``value`` (with version ``version + 1``) only if its stored version is
        ``version`` (None: absent); True when written. The caller re-reads and retries otherwise."""

    @abstractmethod
    def delete(self, key: str, only_if: dict[str, Any] | None = None) -> None:
        """Remove ``key``; with ``only_if``, only while the stored value still equals it (releasing one's own lock)."""
