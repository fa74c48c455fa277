"""Benchmark fixture (not product code): how soon the local SQS -> Lambda mapping picks up a
conversation's next message once the previous one is done, against moto.

Two pollers on the same FIFO queue: ``long_poll_while_busy`` keeps a long poll open while a batch is
in flight (what the emulator's mapping did before), and the emulator's ``SqsEventSource`` as it is.
Each "job" takes 200 ms, then the next message of the same group is sent (a visitor's follow-up).
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import threading
import time
from typing import Any

import boto3

from local.emulator.config import EventSourceMapping, FunctionConfig
from local.emulator.invoke import LambdaRuntime
from local.emulator.sqs import SqsEventSource, default_sqs_client_factory
from local.services import MotoServer

JOB_SECONDS = 0.2
REGION = "us-east-1"
_received: dict[str, float] = {}
_done: dict[str, float] = {}


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    """The probe's "generate function": note when each message arrived, work, finish."""
    for record in event["Records"]:
        _received[json.loads(record["body"])["id"]] = time.monotonic()
    time.sleep(JOB_SECONDS)
    for record in event["Records"]:
        _done[json.loads(record["body"])["id"]] = time.monotonic()
    return {}


def _follow_ups(client: Any, queue_url: str, prefix: str, count: int) -> list[float]:
    """Send ``count`` messages of one group, each once the previous job is done; pickup delays (ms)."""
    delays = []
    for index in range(count):
        message_id = f"{prefix}-{index}"
        sent = time.monotonic()
        client.send_message(
            QueueUrl=queue_url,
            MessageBody=json.dumps({"id": message_id}),
            MessageGroupId=prefix,
            MessageDeduplicationId=message_id,
        )
        while message_id not in _done:
            time.sleep(0.001)
        delays.append((_received[message_id] - sent) * 1000)
        time.sleep(0.05)  # the batch is deleted and the visitor types the next question
    return delays


def long_poll_while_busy(moto: MotoServer, count: int) -> list[float]:
    client = boto3.client("sqs", endpoint_url=moto.url, region_name=REGION)
    queue_url = client.create_queue(QueueName="probe-long.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    stop = threading.Event()

    def work(message: dict[str, Any]) -> None:
        handler({"Records": [{"body": message["Body"]}]}, None)
        client.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    def poll() -> None:
        while not stop.is_set():
            response = client.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=1)
            for message in response.get("Messages", []):
                threading.Thread(target=work, args=(message,)).start()

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        return _follow_ups(client, queue_url, "long", count)
    finally:
        stop.set()
        poller.join(timeout=5)


def emulator_mapping(moto: MotoServer, count: int) -> list[float]:
    client = boto3.client("sqs", endpoint_url=moto.url, region_name=REGION)
    queue_url = client.create_queue(QueueName="probe-emulator.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    result: list[float] = []

    async def main() -> None:
        runtime = LambdaRuntime(
            {"probe": FunctionConfig(handler="local.bench._sqs_probe:handler")}, region=REGION, account_id="0" * 12
        )
        mapping = EventSourceMapping(queue_url=queue_url, function="probe", batch_size=1)
        source = SqsEventSource(
            mapping,
            runtime,
            region=REGION,
            account_id="0" * 12,
            client_factory=default_sqs_client_factory(REGION, moto.url),
        )
        await source.start()
        try:
            result.extend(await asyncio.to_thread(_follow_ups, client, queue_url, "emulator", count))
        finally:
            await source.stop()
            runtime.close()

    asyncio.run(main())
    return result


def measure(count: int = 12) -> dict[str, dict[str, float]]:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log
    moto = MotoServer().start()
    try:
        runs = {"long poll while busy": long_poll_while_busy(moto, count), "emulator": emulator_mapping(moto, count)}
    finally:
        moto.stop()
    return {
        name: {"p50": statistics.median(values), "max": max(values), "count": len(values)}
        for name, values in runs.items()
    }
