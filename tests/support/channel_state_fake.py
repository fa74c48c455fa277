"""FakeChannelState (an in-memory ``ChannelState``, thread-safe, with an injectable clock) and
FakeTenantSecrets, for unit tests. The DynamoDB adapter runs the same contract in
tests/integration/test_channels_state.py."""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable
from typing import Any

from shared.channels.secrets import SecretMissing, TenantSecrets
from shared.channels.state import ChannelState


class FakeChannelState(ChannelState):
    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._items: dict[str, tuple[dict[str, Any], float]] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def _live(self, key: str) -> dict[str, Any] | None:
        item = self._items.get(key)
        if item is None or item[1] <= self._clock():
            return None
        return item[0]

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            value = self._live(key)
            return None if value is None else copy.deepcopy(value)

    def put(self, key: str, value: dict[str, Any], ttl_seconds: float) -> None:
        with self._lock:
            self._items[key] = (copy.deepcopy(value), self._clock() + ttl_seconds)

    def put_if_absent(self, key: str, value: dict[str, Any], ttl_seconds: float) -> bool:
        with self._lock:
            if self._live(key) is not None:
                return False
            self._items[key] = (copy.deepcopy(value), self._clock() + ttl_seconds)
            return True

    def put_if_version(self, key: str, value: dict[str, Any], version: int | None, ttl_seconds: float) -> bool:
        with self._lock:
            current = self._live(key)
            stored = None if current is None else current.get("_version")
            if stored != version:
                return False
            new_version = 1 if version is None else version + 1
            self._items[key] = ({**copy.deepcopy(value), "_version": new_version}, self._clock() + ttl_seconds)
            return True

    def delete(self, key: str, only_if: dict[str, Any] | None = None) -> None:
        with self._lock:
            current = self._live(key)
            if only_if is None or current == only_if:
                self._items.pop(key, None)


class FakeTenantSecrets(TenantSecrets):
    """In-memory tenant secrets (the Secrets Manager adapter runs against moto in tests/integration)."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, str], str] = {}

    def put(self, tenant_id: str, name: str, value: str) -> None:
        self.values[(tenant_id, name)] = value

    def get(self, tenant_id: str, name: str) -> str:
        try:
            return self.values[(tenant_id, name)]
        except KeyError:
            raise SecretMissing(f"tenant secret {name!r} cannot be read (ResourceNotFoundException)") from None

    def exists(self, tenant_id: str, name: str) -> bool:
        return (tenant_id, name) in self.values
