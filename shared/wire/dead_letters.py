"""The generate queue's dead-letter queue: jobs that could not be settled (the generate function
crashed on them ``maxReceiveCount`` times), listed and sent back to the queue by an operator.

The dead-letter queue is the one the job queue's ``RedrivePolicy`` names, so the only setting is the
job queue's URL. A redriven job goes back into its conversation's message group; the generate
function's answered-check keeps a job that was answered after all from being answered twice.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from shared.config_section import CamelModel
from shared.errors import NotFound
from shared.wire.jobs import GenerateJob

# SQS returns at most 10 messages per receive.
_BATCH = 10
# Listing hides the messages it read for this long (SQS cannot peek), then gives them back at once.
_PEEK_SECONDS = 30


class DeadLetter(CamelModel):
    """One job in the dead-letter queue."""

    sqs_message_id: str
    # How often the generate function received it before SQS gave up on it.
    receive_count: int | None = None
    # Epoch ms when it was first sent to the job queue.
    sent_at: int | None = None
    tenant_id: str | None = None
    conversation_id: str | None = None
    message_id: str | None = None
    text_preview: str | None = None
    # Set when the body is not a generate job (it is still redriven as it is).
    problem: str | None = None


class DeadLetters:
    def __init__(self, client: Any, queue_url: str) -> None:
        self._sqs = client
        self._queue_url = queue_url
        self._dlq_url: str | None = None

    def url(self) -> str:
        """The dead-letter queue named by the job queue's RedrivePolicy."""
        if self._dlq_url is None:
            if not self._queue_url:
                raise NotFound("no generate queue is configured (KEFU_GENERATE_QUEUE_URL)")
            attributes = self._sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["RedrivePolicy"])
            policy = attributes.get("Attributes", {}).get("RedrivePolicy")
            if not policy:
                raise NotFound("the generate queue has no dead-letter queue (no RedrivePolicy)")
            arn = json.loads(policy)["deadLetterTargetArn"]
            account, name = arn.split(":")[4], arn.split(":")[5]
            self._dlq_url = str(self._sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=account)["QueueUrl"])
        return self._dlq_url

    def count(self) -> int:
        attributes = self._sqs.get_queue_attributes(QueueUrl=self.url(), AttributeNames=["ApproximateNumberOfMessages"])
        return int(attributes.get("Attributes", {}).get("ApproximateNumberOfMessages", 0))

    def peek(self, limit: int) -> list[DeadLetter]:
        """Up to ``limit`` jobs, left in the queue. On a FIFO queue a receive shows one batch per
        message group, so a conversation with several dead jobs shows its first one."""
        received = self._receive(limit, visibility=_PEEK_SECONDS)
        if received:
            # Give them back at once: listing must not delay a redrive.
            entries = [
                {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                for index, m in enumerate(received)
            ]
            for start in range(0, len(entries), _BATCH):
                self._sqs.change_message_visibility_batch(QueueUrl=self.url(), Entries=entries[start : start + _BATCH])
        return [_describe(message) for message in received]

    def redrive(self, limit: int) -> list[DeadLetter]:
        """Send up to ``limit`` jobs back to the job queue (same message group), then delete them
        from the dead-letter queue. Returns what was moved."""
        moved: list[DeadLetter] = []
        while len(moved) < limit:
            batch = self._receive(min(_BATCH, limit - len(moved)), visibility=_PEEK_SECONDS)
            if not batch:
                break
            for message in batch:
                self._send_back(message)
                self._sqs.delete_message(QueueUrl=self.url(), ReceiptHandle=message["ReceiptHandle"])
                moved.append(_describe(message))
        return moved

    def _send_back(self, message: dict[str, Any]) -> None:
        attributes = message.get("Attributes", {})
        request: dict[str, Any] = {"QueueUrl": self._queue_url, "MessageBody": message["Body"]}
        if self._queue_url.endswith(".fifo"):
            request["MessageGroupId"] = attributes.get("MessageGroupId") or "redriven"
            # A new deduplication id: the original one may still be inside SQS's 5-minute window.
            request["MessageDeduplicationId"] = f"redrive:{message['MessageId']}"[:128]
        self._sqs.send_message(**request)

    def _receive(self, limit: int, *, visibility: int) -> list[dict[str, Any]]:
        seen: dict[str, dict[str, Any]] = {}
        while len(seen) < limit:
            response = self._sqs.receive_message(
                QueueUrl=self.url(),
                MaxNumberOfMessages=min(_BATCH, limit - len(seen)),
                VisibilityTimeout=visibility,
                WaitTimeSeconds=0,
                MessageSystemAttributeNames=["All"],
            )
            messages = [m for m in response.get("Messages", []) if m["MessageId"] not in seen]
            if not messages:
                break
            seen.update((m["MessageId"], m) for m in messages)
        return list(seen.values())


def _describe(message: dict[str, Any]) -> DeadLetter:
    attributes = message.get("Attributes", {})
    letter = DeadLetter(
        sqs_message_id=message["MessageId"],
        receive_count=_int(attributes.get("ApproximateReceiveCount")),
        sent_at=_int(attributes.get("SentTimestamp")),
    )
    try:
        job = GenerateJob.model_validate_json(message["Body"])
    except ValidationError:
        letter.problem = "not a generate job"
        return letter
    letter.tenant_id, letter.conversation_id, letter.message_id = job.tenant_id, job.conversation_id, job.message_id
    letter.text_preview = job.text[:140]
    return letter


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
