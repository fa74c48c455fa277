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
    """SQS FIFO: one message group per conversation keeps its questions in order; the message id
    deduplicates a re-enqueue within SQS's five-minute window."""

    def __init__(self, client: Any, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def enqueue(self, job: GenerateJob) -> None:
        self._client.send_message(
            QueueUrl=self._queue_url,
            MessageBody=job.model_dump_json(),
            MessageGroupId=job.conversation_id,
            MessageDeduplicationId=job.message_id,
        )
