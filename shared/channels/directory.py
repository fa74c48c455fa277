"""The tenants' configured channels: ``chan:config:<channelId>`` (what the channels function reads on
each request, by the id in its URL) and ``chan:tenant:<tenantId>`` (the tenant's channel ids, for
listing), both in ``ChannelState``. A tenant has at most ``MAX_CHANNELS`` channels."""

from __future__ import annotations

import secrets
import time
from typing import Any

from shared.channels.base import ChannelError
from shared.channels.state import ChannelState
from shared.config_section import CamelModel

MAX_CHANNELS = 50
_FOREVER = 10 * 365 * 24 * 3600.0


class ChannelRecord(CamelModel):
    channel_id: str
    tenant_id: str
    kind: str
    fields: dict[str, Any]
    enabled: bool = True
    created_at: float
    updated_at: float


class TooManyChannels(ChannelError):
    pass


class ChannelDirectory:
    def __init__(self, state: ChannelState) -> None:
        self._state = state

    @staticmethod
    def _key(channel_id: str) -> str:
        return f"chan:config:{channel_id}"

    @staticmethod
    def _tenant_key(tenant_id: str) -> str:
        return f"chan:tenant:{tenant_id}"

    def create(self, tenant_id: str, kind: str, fields: dict[str, Any]) -> ChannelRecord:
        now = time.time()
        record = ChannelRecord(
            channel_id=f"ch_{secrets.token_urlsafe(12)}",
            tenant_id=tenant_id,
            kind=kind,
            fields=fields,
            created_at=now,
            updated_at=now,
        )
        self._change_index(tenant_id, add=record.channel_id)
        self._state.put(self._key(record.channel_id), record.model_dump(mode="json"), _FOREVER)
        return record

    def get(self, channel_id: str) -> ChannelRecord | None:
        value = self._state.get(self._key(channel_id))
        return None if value is None else ChannelRecord.model_validate(value)

    def list(self, tenant_id: str) -> list[ChannelRecord]:
        index = self._state.get(self._tenant_key(tenant_id))
        records = [self.get(channel_id) for channel_id in (index or {}).get("ids", [])]
        return [record for record in records if record is not None and record.tenant_id == tenant_id]

    def save(self, record: ChannelRecord) -> ChannelRecord:
        updated = record.model_copy(update={"updated_at": time.time()})
        self._state.put(self._key(record.channel_id), updated.model_dump(mode="json"), _FOREVER)
        return updated

    def delete(self, record: ChannelRecord) -> None:
        self._state.delete(self._key(record.channel_id))
        self._change_index(record.tenant_id, remove=record.channel_id)

    def _change_index(self, tenant_id: str, add: str | None = None, remove: str | None = None) -> None:
        for _ in range(8):
            current = self._state.get(self._tenant_key(tenant_id))
            version = None if current is None else int(current["_version"])
            ids = [] if current is None else [i for i in current["ids"] if i != remove]
            if add is not None:
                if len(ids) >= MAX_CHANNELS:
                    raise TooManyChannels(f"a tenant has at most {MAX_CHANNELS} channels")
                ids.append(add)
            if self._state.put_if_version(self._tenant_key(tenant_id), {"ids": ids}, version, _FOREVER):
                return
        raise ChannelError("the channel list is busy; try again")
