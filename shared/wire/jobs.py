"""Jobs of the generate queue: answer a visitor message (``GenerateJob``, from the message and channels
functions) or pull a channel's waiting messages (``ChannelPullJob``, from the channels function)."""

from __future__ import annotations

import hashlib
import zlib
from abc import ABC, abstractmethod
from typing import Any, Literal

from pydantic import BaseModel


class GenerateJob(BaseModel):
    kind: Literal["generate"] = "generate"
    tenant_id: str
    conversation_id: str
    message_id: str
    connection_id: str
    callback_url: str
    text: str

    def log_keys(self) -> dict[str, str]:
        """What every log line about this job carries (Logs Insights filters on them)."""
        ids = ("tenant_id", "conversation_id", "connection_id")
        return {name: getattr(self, name) for name in ids}

    def order_key(self) -> str:
        """Jobs with the same key run one at a time, in order: a conversation's questions."""
        return self.conversation_id

    def dedup_id(self) -> str:
        return f"{self.message_id}:{self.connection_id}"[:128]


class ChannelPullJob(BaseModel):
    """A platform only said messages are waiting (WeCom's ``kf_msg_or_event``): the job pulls them."""

    kind: Literal["channel_pull"] = "channel_pull"
    tenant_id: str
    channel_id: str
    open_kfid: str
    token: str

    def log_keys(self) -> dict[str, str]:
        return {"tenant_id": self.tenant_id, "channel_id": self.channel_id, "open_kfid": self.open_kfid}

    def order_key(self) -> str:
        """One pull at a time per customer-service account (its cursor is read and moved in order)."""
        return f"{self.channel_id}:{self.open_kfid}"

    def dedup_id(self) -> str:
        # The callback's token names the batch; a platform retry of the callback is queued once.
        return f"pull:{hashlib.sha256(self.token.encode()).hexdigest()[:40]}:{self.channel_id}"[:128]


QueueJob = GenerateJob | ChannelPullJob


class GenerationQueue(ABC):
    @abstractmethod
    def enqueue(self, job: QueueJob) -> None: ...


def message_group(job: QueueJob, groups_per_tenant: int) -> str:
    """The job's SQS FIFO message group: one of ``groups_per_tenant`` per tenant, always the same one for
    a conversation (its questions stay in order). FIFO delivers one message per group at a time, so a
    tenant never has more than ``groups_per_tenant`` answers generating at once: a tenant flooding
    the queue waits behind its own jobs while other tenants' groups are served (docs/security.md)."""
    bucket = zlib.crc32(job.order_key().encode()) % groups_per_tenant
    return f"{job.tenant_id}:{bucket}"


class SqsGenerationQueue(GenerationQueue):
    """SQS FIFO: a conversation's questions share a message group, so they are answered in order; a
    tenant has at most ``groups_per_tenant`` groups (``message_group``). The message and
    connection ids deduplicate a re-enqueue within SQS's five-minute window: a resend on the same
    connection is queued once, while a resend from a new connection (the visitor left before the
    answer, whose job then found the old connection gone) is queued again. The generate function's
    answered-check keeps a message from being answered twice either way."""

    def __init__(self, client: Any, queue_url: str, groups_per_tenant: int = 4) -> None:
        self._client = client
        self._queue_url = queue_url
        self._groups_per_tenant = groups_per_tenant

    def enqueue(self, job: QueueJob) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=message_group(job, self._groups_per_tenant),
            MessageDeduplicationId=job.dedup_id(),
        )
