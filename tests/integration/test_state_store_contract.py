"""The StateStore contract (tests/support/state_store_contract.py) on the DynamoDB adapter, through
moto's server; tests/unit/test_state_store_contract.py runs the same suite on the in-memory fake.

The tables are created once for the class and emptied after each test (creating six tables per test
costs seconds each on a busy machine; emptying a few items costs milliseconds)."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest

from local.services import MotoServer
from shared.settings import Settings
from shared.state.dynamodb import DynamoStateStore
from tests.integration.conftest import fresh_tables
from tests.support.state_store_contract import StateStoreContract

pytestmark = pytest.mark.integration


@pytest.fixture(scope="class")
def tables(moto_server: MotoServer) -> Settings:
    return fresh_tables(moto_server)


def _empty(settings: Settings) -> None:
    client = boto3.client("dynamodb", endpoint_url=settings.dynamodb_endpoint, region_name=settings.aws_region)
    for table in client.list_tables()["TableNames"]:
        if not table.startswith(settings.tenants_table.removesuffix("-tenants")):
            continue
        keys = [k["AttributeName"] for k in client.describe_table(TableName=table)["Table"]["KeySchema"]]
        for page in client.get_paginator("scan").paginate(TableName=table, ProjectionExpression=", ".join(keys)):
            for item in page["Items"]:
                client.delete_item(TableName=table, Key={k: item[k] for k in keys})


class TestDynamoStateStore(StateStoreContract):
    @pytest.fixture
    def store(self, tables: Settings) -> Iterator[DynamoStateStore]:
        yield DynamoStateStore(tables)
        _empty(tables)
