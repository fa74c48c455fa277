"""The local runner's services: redis-server and moto's process never outlive the process that started
them, and moto's cheaper TransactWriteItems still rolls a cancelled transaction back completely."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest
from botocore.exceptions import ClientError

from local.services import MotoServer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


def test_redis_server_dies_when_its_starter_is_killed() -> None:
    code = (
        "from local.services import RedisServer; server = RedisServer().start(); "
        "print(server._process.pid, flush=True); import time; time.sleep(120)"
    )
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert starter.stdout is not None
    redis_pid = int(starter.stdout.readline())
    assert _running(redis_pid)
    starter.kill()  # no cleanup code runs
    starter.wait()
    deadline = time.monotonic() + 5
    while _running(redis_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survived = _running(redis_pid)
    if survived:  # keep the machine clean even when the test fails
        os.kill(redis_pid, 9)
    assert not survived


def test_moto_process_dies_when_its_starter_is_killed() -> None:
    code = (
        "from local.services import MotoServer; server = MotoServer().start(); "
        "print(server._process.pid, flush=True); import time; time.sleep(120)"
    )
    starter = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert starter.stdout is not None
    moto_pid = int(starter.stdout.readline())
    assert _running(moto_pid)
    starter.kill()
    starter.wait()
    deadline = time.monotonic() + 5
    while _running(moto_pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    survived = _running(moto_pid)
    if survived:
        os.kill(moto_pid, 9)
    assert not survived


def test_cancelled_transaction_leaves_no_trace(moto_server: MotoServer) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server.url, region_name="us-east-1")
    table = "tx-rollback"
    dynamodb.create_table(
        TableName=table,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    for sk in ("kept", "updated", "guard"):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "p"}, "sk": {"S": sk}, "v": {"S": "before"}})

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                {"Put": {"TableName": table, "Item": {"pk": {"S": "p"}, "sk": {"S": "new"}, "v": {"S": "x"}}}},
                {"Put": {"TableName": table, "Item": {"pk": {"S": "p"}, "sk": {"S": "kept"}, "v": {"S": "x"}}}},
                {
                    "Update": {
                        "TableName": table,
                        "Key": {"pk": {"S": "p"}, "sk": {"S": "updated"}},
                        "UpdateExpression": "SET v = :x",
                        "ExpressionAttributeValues": {":x": {"S": "x"}},
                    }
                },
                {
                    "ConditionCheck": {
                        "TableName": table,
                        "Key": {"pk": {"S": "p"}, "sk": {"S": "guard"}},
                        "ConditionExpression": "attribute_not_exists(pk)",
                    }
                },
            ]
        )
    assert raised.value.response["Error"]["Code"] == "TransactionCanceledException"
    items = dynamodb.query(
        TableName=table,
        KeyConditionExpression="pk = :p",
        ExpressionAttributeValues={":p": {"S": "p"}},
        ConsistentRead=True,
    )["Items"]
    assert sorted((item["sk"]["S"], item["v"]["S"]) for item in items) == [
        ("guard", "before"),
        ("kept", "before"),
        ("updated", "before"),
    ]


def test_moto_state_is_saved_on_stop_and_restored_on_start(tmp_path: Path) -> None:
    state_file = tmp_path / "moto-state.pickle"
    first = MotoServer(state_file=state_file).start()
    try:
        dynamodb = boto3.client("dynamodb", endpoint_url=first.url, region_name="us-east-1")
        dynamodb.create_table(
            TableName="kept",
            KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.put_item(TableName="kept", Item={"pk": {"S": "a"}, "v": {"S": "1"}})
        sqs = boto3.client("sqs", endpoint_url=first.url, region_name="us-east-1")
        fifo = {"FifoQueue": "true"}
        queue = sqs.create_queue(QueueName="kept.fifo", Attributes={**fifo, "VisibilityTimeout": "300"})["QueueUrl"]
        for body in ("waiting", "in flight"):
            sqs.send_message(QueueUrl=queue, MessageBody=body, MessageGroupId=body, MessageDeduplicationId=body)
        taken = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=1)["Messages"]
    finally:
        first.stop()  # SIGTERM: moto writes its state file
    assert state_file.exists()

    # Restarted alone (the consumer may still run): the received message stays invisible.
    alone = MotoServer(state_file=state_file).start()
    try:
        dynamodb = boto3.client("dynamodb", endpoint_url=alone.url, region_name="us-east-1")
        assert dynamodb.get_item(TableName="kept", Key={"pk": {"S": "a"}})["Item"]["v"] == {"S": "1"}
        sqs = boto3.client("sqs", endpoint_url=alone.url, region_name="us-east-1")
        queue = sqs.get_queue_url(QueueName="kept.fifo")["QueueUrl"]
        visible = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        assert [m["Body"] for m in visible] == ["in flight" if taken[0]["Body"] == "waiting" else "waiting"]
    finally:
        alone.stop()

    # Restarted with the whole stack (the consumer is gone): the in-flight message is offered again.
    with_stack = MotoServer(state_file=state_file).start(release_in_flight=True)
    try:
        sqs = boto3.client("sqs", endpoint_url=with_stack.url, region_name="us-east-1")
        queue = sqs.get_queue_url(QueueName="kept.fifo")["QueueUrl"]
        offered = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
        assert taken[0]["Body"] in [m["Body"] for m in offered]
    finally:
        with_stack.stop()


def test_fifo_message_in_flight_across_a_moto_restart_comes_back_and_frees_its_group(tmp_path: Path) -> None:
    """The fault suite's "moto restarted": a job received just before moto's SIGTERM is restored in
    flight (its consumer may still run). Its group must stay held only until its visibility timeout
    ends: then the job comes back (the failed attempt's handle no longer deletes it) and, once it
    is settled, the group's next job is delivered. A restored queue whose in-flight bookkeeping no
    longer matched its messages would hold the group for ever."""
    state_file = tmp_path / "moto-state.pickle"
    first = MotoServer(state_file=state_file).start()
    try:
        sqs = boto3.client("sqs", endpoint_url=first.url, region_name="us-east-1")
        # Long enough to outlast moto's restart on a loaded 2-core machine (2 s did not, once).
        attributes = {"FifoQueue": "true", "VisibilityTimeout": "10"}
        queue = sqs.create_queue(QueueName="jobs.fifo", Attributes=attributes)["QueueUrl"]
        for body in ("first", "second"):
            sqs.send_message(QueueUrl=queue, MessageBody=body, MessageGroupId="g", MessageDeduplicationId=body)
        taken = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]
        assert [m["Body"] for m in taken] == ["first", "second"][: len(taken)] and taken
        # Keep only "first" in flight: "second" (if it came in the same batch) is released at once.
        for extra in taken[1:]:
            sqs.change_message_visibility(QueueUrl=queue, ReceiptHandle=extra["ReceiptHandle"], VisibilityTimeout=0)
        stale_handle = taken[0]["ReceiptHandle"]
    finally:
        first.stop()  # SIGTERM: moto saves "first" in flight and exits

    restarted = MotoServer(state_file=state_file).start()  # as the runner restarts it: in flight kept
    try:
        sqs = boto3.client("sqs", endpoint_url=restarted.url, region_name="us-east-1")
        queue = sqs.get_queue_url(QueueName="jobs.fifo")["QueueUrl"]
        # While "first" is in flight, its group gives nothing (FIFO order).
        assert sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []) == []
        # After its visibility timeout, "first" comes back (generous bound: a shared machine).
        again: list[dict[str, object]] = []
        deadline = time.monotonic() + 30
        while not again and time.monotonic() < deadline:
            again = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert [m["Body"] for m in again][:1] == ["first"]
        assert again[0]["ReceiptHandle"] != stale_handle
        sqs.delete_message(QueueUrl=queue, ReceiptHandle=str(again[0]["ReceiptHandle"]))
        # Settled: the group's next message is delivered.
        rest = list(again[1:])
        deadline = time.monotonic() + 30
        while not rest and time.monotonic() < deadline:
            rest = sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1).get("Messages", [])
        assert [m["Body"] for m in rest] == ["second"]
    finally:
        restarted.stop()
