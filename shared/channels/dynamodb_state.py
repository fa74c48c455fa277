"""``ChannelState`` in DynamoDB: items ``chan:…`` in the limits table beside the rate counters, so the
channels need no table of their own. Conditions make locks, first sightings and versioned updates
atomic across containers; expiry is checked on read because DynamoDB's TTL deletes late."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.exceptions import DeleteError, PutError
from pynamodb.models import Model

from shared.channels.state import ChannelState


class ChannelStateModel(Model):
    class Meta:
        table_name = "kefu-limits"

    counter_key = UnicodeAttribute(hash_key=True)
    payload = UnicodeAttribute()
    version = NumberAttribute(default=0)
    valid_until = NumberAttribute()  # exact expiry (seconds, float); TTL below deletes some time after
    expires_at = TTLAttribute()


def _conditional_failed(exc: Exception) -> bool:
    cause = getattr(exc, "cause_response_code", None) or getattr(getattr(exc, "cause", None), "response", {})
    return "ConditionalCheckFailed" in str(cause) or "ConditionalCheckFailed" in str(exc)


class DynamoChannelState(ChannelState):
    def __init__(
        self,
        table_name: str,
        endpoint: str | None,
        region: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        meta: Any = ChannelStateModel.Meta  # PynamoDB's Meta is configured by attribute
        changed = getattr(meta, "table_name", None) != table_name or getattr(meta, "host", None) != endpoint
        meta.table_name = table_name
        meta.host = endpoint
        meta.region = region
        meta.connect_timeout_seconds = 3
        meta.read_timeout_seconds = 5
        meta.max_retry_attempts = 2
        if changed:
            ChannelStateModel._connection = None
        self._clock = clock

    def _item(self, key: str, value: dict[str, Any], version: int, ttl_seconds: float) -> ChannelStateModel:
        until = self._clock() + ttl_seconds
        return ChannelStateModel(
            key,
            payload=json.dumps(value, ensure_ascii=False),
            version=version,
            valid_until=until,
            expires_at=datetime.fromtimestamp(int(until) + 1, tz=UTC),
        )

    def _read(self, key: str) -> ChannelStateModel | None:
        try:
            item = ChannelStateModel.get(key, consistent_read=True)
        except ChannelStateModel.DoesNotExist:
            return None
        if item.valid_until <= self._clock():
            return None
        return item

    def get(self, key: str) -> dict[str, Any] | None:
        item = self._read(key)
        return None if item is None else dict(json.loads(item.payload))

    def put(self, key: str, value: dict[str, Any], ttl_seconds: float) -> None:
        self._item(key, value, 0, ttl_seconds).save()

    def put_if_absent(self, key: str, value: dict[str, Any], ttl_seconds: float) -> bool:
        return self._conditional_save(key, value, 0, ttl_seconds, expected=None)

    def put_if_version(self, key: str, value: dict[str, Any], version: int | None, ttl_seconds: float) -> bool:
        new_version = 1 if version is None else version + 1
        return self._conditional_save(key, {**value, "_version": new_version}, new_version, ttl_seconds, version)

    def _conditional_save(
        self, key: str, value: dict[str, Any], version: int, ttl_seconds: float, expected: int | None
    ) -> bool:
        if expected is None:  # absent, or present but expired (TTL has not removed it yet)
            now = self._clock()
            condition = ChannelStateModel.counter_key.does_not_exist() | (ChannelStateModel.valid_until <= now)
        else:
            condition = ChannelStateModel.version == expected
        try:
            self._item(key, value, version, ttl_seconds).save(condition=condition)
        except PutError as exc:
            if _conditional_failed(exc):
                return False
            raise
        return True

    def delete(self, key: str, only_if: dict[str, Any] | None = None) -> None:
        item = ChannelStateModel(key)
        try:
            if only_if is None:
                item.delete()
            else:
                item.delete(condition=ChannelStateModel.payload == json.dumps(only_if, ensure_ascii=False))
        except DeleteError as exc:
            if not _conditional_failed(exc):
                raise
