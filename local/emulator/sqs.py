"""SQS -> Lambda event source mapping: long-poll a queue, invoke the function, delete what succeeded.

Like Lambda's poller: a failed batch is left on the queue, so it comes back after the visibility
timeout (and the queue's RedrivePolicy moves it to a DLQ after maxReceiveCount receives); partial
batch responses (``batchItemFailures``) keep only the reported messages. FIFO queues are processed
one batch per message group at a time, in order, with different groups in parallel.

Receiving from a FIFO queue while some of its batches are in flight uses short polls (every
``SHORT_POLL_SECONDS``, and at once when a batch finishes) instead of long polls. moto's
ReceiveMessage takes its snapshot of the busy message groups when the call starts: a long poll begun
while a conversation's batch was in flight does not see that group free up, and its next message
waited out the rest of the poll (up to ``wait_time_seconds``, ~0.5 s on average, with moto spinning
a CPU meanwhile). A long poll with nothing in flight has no stale groups, so idle queues still get
a new message within milliseconds, as Lambda's event source mapping does.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import boto3

from local.emulator.config import EventSourceMapping
from local.emulator.events import queue_arn, s3_event, sqs_event, sqs_record
from local.emulator.invoke import LambdaRuntime

logger = logging.getLogger("local.emulator.sqs")

SqsClientFactory = Callable[[], Any]

_MAX_BACKOFF_SECONDS = 10.0
# Between two short polls while batches are in flight (the added latency for another group's message).
SHORT_POLL_SECONDS = 0.02


def default_sqs_client_factory(region: str, endpoint_url: str | None) -> SqsClientFactory:
    def create() -> Any:
        session = boto3.session.Session(region_name=region)
        credentials: dict[str, str] = {}
        if session.get_credentials() is None:
            # Local SQS endpoints (moto) accept any key; AWS would refuse, which is the right error.
            credentials = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
        return session.client("sqs", endpoint_url=endpoint_url, **credentials)

    return create


def failed_message_ids(payload: Any, message_ids: Sequence[str]) -> set[str]:
    """Message IDs to keep on the queue, from a result with ``batchItemFailures``.

    Lambda's rules: no/empty/null ``batchItemFailures`` is complete success; an item without a
    usable ``itemIdentifier``, or naming a message not in the batch, fails the whole batch.
    """
    if not isinstance(payload, dict):
        return set()
    failures = payload.get("batchItemFailures")
    if not failures:
        return set()
    everything = set(message_ids)
    if not isinstance(failures, list):
        return everything
    failed: set[str] = set()
    for item in failures:
        identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(identifier, str) or identifier not in everything:
            return everything
        failed.add(identifier)
    return failed


def split_batches(messages: Sequence[Mapping[str, Any]], *, fifo: bool) -> list[list[Mapping[str, Any]]]:
    """One batch per message group for FIFO queues (order kept), else one batch."""
    if not messages:
        return []
    if not fifo:
        return [list(messages)]
    groups: OrderedDict[str, list[Mapping[str, Any]]] = OrderedDict()
    for message in messages:
        group = (message.get("Attributes") or {}).get("MessageGroupId", "")
        groups.setdefault(group, []).append(message)
    return list(groups.values())


class SqsEventSource:
    def __init__(
        self,
        mapping: EventSourceMapping,
        runtime: LambdaRuntime,
        *,
        region: str,
        account_id: str,
        client_factory: SqsClientFactory,
    ) -> None:
        self.mapping = mapping
        self.runtime = runtime
        self.region = region
        self.account_id = account_id
        self._client_factory = client_factory
        self._client: Any = None
        self._fifo = mapping.queue_url.endswith(".fifo")
        self._arn = queue_arn(mapping.queue_url, region=region, account_id=account_id)
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._group_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._capacity = asyncio.Semaphore(mapping.max_concurrency)
        self._batch_finished = asyncio.Event()

    async def start(self) -> None:
        self._client = await asyncio.to_thread(self._client_factory)
        self._poller = asyncio.create_task(self._poll(), name=f"sqs-poller:{self.mapping.queue_url}")
        logger.info("polling %s -> %s", self.mapping.queue_url, self.mapping.function)

    async def stop(self) -> None:
        self._stopping.set()
        if self._poller is not None:
            await self._poller
        if self._batches:
            await asyncio.gather(*self._batches, return_exceptions=True)

    async def _poll(self) -> None:
        backoff = 0.5
        while not self._stopping.is_set():
            # Receive only when a batch can start, so received messages do not wait (and time out).
            while len(self._batches) >= self.mapping.max_concurrency and not self._stopping.is_set():
                await asyncio.wait(self._batches, return_when=asyncio.FIRST_COMPLETED)
            if self._stopping.is_set():
                return
            # FIFO with batches in flight: short polls (see the module docstring).
            short = self._fifo and bool(self._batches)
            self._batch_finished.clear()
            try:
                messages = await asyncio.to_thread(self._receive, 0 if short else self.mapping.wait_time_seconds)
                backoff = 0.5
            except Exception as exc:
                logger.warning("receive from %s failed: %s", self.mapping.queue_url, exc)
                try:
                    await asyncio.wait_for(self._stopping.wait(), backoff)
                except TimeoutError:
                    pass
                backoff = min(backoff * 2, _MAX_BACKOFF_SECONDS)
                continue
            for batch in split_batches(messages, fifo=self._fifo):
                task = asyncio.create_task(self._process(batch))
                self._batches.add(task)
                task.add_done_callback(self._finished)
            if short and not messages:
                # Nothing new: poll again shortly, or as soon as a batch frees its message group.
                try:
                    await asyncio.wait_for(self._batch_finished.wait(), SHORT_POLL_SECONDS)
                except TimeoutError:
                    pass

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._batches.discard(task)
        self._batch_finished.set()

    def _receive(self, wait_seconds: int) -> list[dict[str, Any]]:
        response = self._client.receive_message(
            QueueUrl=self.mapping.queue_url,
            MaxNumberOfMessages=self.mapping.batch_size,
            WaitTimeSeconds=wait_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages: list[dict[str, Any]] = response.get("Messages", [])
        return messages

    async def _process(self, batch: Sequence[Mapping[str, Any]]) -> None:
        if not self._fifo:
            async with self._capacity:
                await self._invoke(batch)
            return
        # SQS already holds back a group while its messages are in flight; the lock also keeps
        # order if one receive returned several batches of the same group.
        group = (batch[0].get("Attributes") or {}).get("MessageGroupId", "")
        lock, users = self._group_locks.get(group, (asyncio.Lock(), 0))
        self._group_locks[group] = (lock, users + 1)
        try:
            async with lock, self._capacity:
                await self._invoke(batch)
        finally:
            lock, users = self._group_locks[group]
            if users <= 1:
                del self._group_locks[group]
            else:
                self._group_locks[group] = (lock, users - 1)

    async def _invoke(self, batch: Sequence[Mapping[str, Any]]) -> None:
        if self.mapping.payload == "s3":
            await asyncio.gather(*(self._invoke_s3(message) for message in batch))
            return
        records = [sqs_record(message, event_source_arn=self._arn, region=self.region) for message in batch]
        result = await self.runtime.invoke(self.mapping.function, sqs_event(records))
        if not result.ok:
            logger.info(
                "%s failed on %d message(s) from %s; they return after the visibility timeout",
                self.mapping.function,
                len(records),
                self.mapping.queue_url,
            )
            return
        ids = [record["messageId"] for record in records]
        failed = failed_message_ids(result.payload, ids) if self.mapping.report_batch_item_failures else set()
        done = [message for message in batch if message["MessageId"] not in failed]
        if failed:
            # Reported as failed (batchItemFailures): left on the queue, like a failed invocation's.
            logger.info(
                "%s reported %d failed message(s) from %s; they return after the visibility timeout",
                self.mapping.function,
                len(failed),
                self.mapping.queue_url,
            )
        if done:
            try:
                await asyncio.to_thread(self._delete, done)
            except Exception as exc:
                logger.warning("delete from %s failed: %s", self.mapping.queue_url, exc)

    async def _invoke_s3(self, message: Mapping[str, Any]) -> None:
        """One S3 event notification, as S3 invokes the function with it (see EventSourceMapping)."""
        try:
            records = json.loads(message.get("Body") or "{}").get("Records")
        except (ValueError, AttributeError):
            records = None
        if records:  # else S3's s3:TestEvent, sent when a notification is configured: not for functions
            result = await self.runtime.invoke(self.mapping.function, s3_event(records, region=self.region))
            if not result.ok:
                function = self.mapping.function
                logger.info("%s failed on an S3 event; it is retried after the visibility timeout", function)
                return
        try:
            await asyncio.to_thread(self._delete, [message])
        except Exception as exc:
            logger.warning("delete from %s failed: %s", self.mapping.queue_url, exc)

    def _delete(self, messages: Sequence[Mapping[str, Any]]) -> None:
        entries = [
            {"Id": str(index), "ReceiptHandle": message["ReceiptHandle"]} for index, message in enumerate(messages)
        ]
        response = self._client.delete_message_batch(QueueUrl=self.mapping.queue_url, Entries=entries)
        for failure in response.get("Failed", []):
            logger.warning("could not delete a message from %s: %s", self.mapping.queue_url, failure)
