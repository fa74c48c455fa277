"""Generation jobs: what the message function hands to the generate function through the queue."""

from __future__ import annotations

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


class GenerationQueue(ABC):
    @abstractmethod
    def enqueue(self, job: GenerateJob) -> None: ...


class SqsGenerationQueue(GenerationQueue):
    """SQS FIFO: one message group per conversation keeps its questions in order. The message and
    connection ids deduplicate a re-enqueue within SQS's five-minute window: a resend on the same
    connection is queued once, while a resend from a new connection (the visitor left before the
    answer, whose job then found the old connection gone) is queued again. The generate function's
    answered-check keeps a message from being answered twice either way."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def enqueue(self, job: GenerateJob) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=job.conversation_id,
            MessageDeduplicationId=f"{job.message_id}:{job.connection_id}"[:128],
        )
