"""Generation jobs: what the message function hands to the generate function through the queue."""

from __future__ import annotations

import zlib
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel


class GenerateJob(BaseModel):
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


class GenerationQueue(ABC):
    @abstractmethod
    def enqueue(self, job: GenerateJob) -> None: ...


def message_group(job: GenerateJob, groups_per_tenant: int) -> str:
    """The job's SQS FIFO message group: one of ``groups_per_tenant`` per tenant, always the same one for
    a conversation (its questions stay in order). FIFO delivers one message per group at a time, so a
    tenant never has more than ``groups_per_tenant`` answers generating at once: a tenant flooding
    the queue waits behind its own jobs while other tenants' groups are served (docs/security.md)."""
    bucket = zlib.crc32(job.conversation_id.encode()) % groups_per_tenant
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

    def enqueue(self, job: GenerateJob) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=message_group(job, self._groups_per_tenant),
            MessageDeduplicationId=f"{job.message_id}:{job.connection_id}"[:128],
        )
