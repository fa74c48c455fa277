"""The cost benchmark's client instrumentation against moto's DynamoDB and SQS (local/cost/meter.py)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import boto3
import pytest

from local.cost.meter import instrument_aws_clients, restore_aws_clients
from local.emulator.usage import Usage
from local.services import MotoServer

CREDENTIALS = {"aws_access_key_id": "local", "aws_secret_access_key": "local", "region_name": "us-east-1"}


@pytest.fixture
def usage() -> Iterator[Usage]:
    meter = Usage()
    instrument_aws_clients(meter)
    yield meter
    restore_aws_clients()


def _table(dynamodb: object, name: str) -> None:
    dynamodb.create_table(  # type: ignore[attr-defined]
        TableName=name,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "g", "AttributeType": "S"},
        ],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "g-index",
                "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    )


def test_dynamodb_units_follow_item_sizes_and_indexes(moto_server: MotoServer, usage: Usage) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server.url, **CREDENTIALS)
    table = f"cost-{uuid.uuid4().hex[:8]}"
    _table(dynamodb, table)
    big = "x" * 2500  # 3 write units
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}, "body": {"S": big}})  # not in the index
    response = dynamodb.put_item(TableName=table, Item={"pk": {"S": "b"}, "g": {"S": "1"}})  # 1 + 1 (index)
    assert "Attributes" not in response  # the injected ReturnValues stays hidden from the caller
    updated = dynamodb.update_item(
        TableName=table,
        Key={"pk": {"S": "a"}},
        UpdateExpression="SET n = :n",
        ExpressionAttributeValues={":n": {"N": "1"}},
    )
    assert "Attributes" not in updated  # 3 units (the whole item's size)
    dynamodb.get_item(TableName=table, Key={"pk": {"S": "a"}})  # eventually consistent, < 4 KB: 0.5
    dynamodb.get_item(TableName=table, Key={"pk": {"S": "missing"}}, ConsistentRead=True)  # 1
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": "b"}})  # 1 + 1 (index)
    counts = usage.snapshot()["aws"]["dynamodb"]
    assert counts["WRU"] == 3 + 2 + 3 + 2
    assert counts["RRU"] == 1.5
    assert counts[f"WRU {table}"] == counts["WRU"]


def test_a_failed_condition_still_costs_a_write(moto_server: MotoServer, usage: Usage) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto_server.url, **CREDENTIALS)
    table = f"cost-{uuid.uuid4().hex[:8]}"
    _table(dynamodb, table)
    dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}})
    with pytest.raises(dynamodb.exceptions.ConditionalCheckFailedException):
        dynamodb.put_item(TableName=table, Item={"pk": {"S": "a"}}, ConditionExpression="attribute_not_exists(pk)")
    assert usage.snapshot()["aws"]["dynamodb"]["WRU"] == 2


def test_sqs_receives_are_split_into_empty_and_not(moto_server: MotoServer, usage: Usage) -> None:
    sqs = boto3.client("sqs", endpoint_url=moto_server.url, **CREDENTIALS)
    queue = sqs.create_queue(QueueName=f"cost-{uuid.uuid4().hex[:8]}")["QueueUrl"]
    sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=0)
    sqs.send_message(QueueUrl=queue, MessageBody="x" * 70_000)  # two 64 KB chunks
    sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1)
    counts = usage.snapshot()["aws"]["sqs"]
    assert counts["SendMessage"] == 2
    assert counts["ReceiveMessage"] == 1
    assert counts["ReceiveMessage (empty)"] == 1
