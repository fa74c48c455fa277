"""Counting what AWS bills, inside the local stack's process (benchmark instrumentation, not product code).

``instrument_aws_clients(usage)`` wraps every botocore client call of the process (the handlers', the
emulator's own SQS poller's) and adds to ``usage`` (local/emulator/usage.py):

- ``dynamodb``: read and write request units per table, from item sizes (local/cost/units.py). To know
  the size of what a write replaced or produced, a PutItem/DeleteItem without ``ReturnValues`` is sent
  with ``ALL_OLD`` and an UpdateItem with ``ALL_NEW``; the extra attributes are dropped before the caller
  sees the response. Global secondary index writes are added for the indexes whose key the item carries.
- ``sqs``: requests by operation, ReceiveMessage split into receives that returned messages and empty
  ones (the emulator's poller short-polls while jobs are in flight, which Lambda's pollers do not;
  empty receives are priced in the idle floor instead).
- every other service: requests by operation (``s3`` GET/PUT, ``secretsmanager``, ``lambda`` Invoke...).

``CountingStream`` counts the bytes the handlers log to stdout (what CloudWatch Logs would ingest).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from local.cost.units import item_size, read_units, write_units
from local.emulator.usage import Usage

SQS_REQUEST_CHUNK_BYTES = 64 * 1024

_installed: list[Callable[..., Any]] = []


def instrument_aws_clients(usage: Usage) -> None:
    if _installed:
        return
    original = BaseClient._make_api_call
    _installed.append(original)
    indexes = _IndexKeys(original)

    def metered(client: BaseClient, operation: str, params: dict[str, Any]) -> Any:
        service = client.meta.service_model.service_name
        if service == "dynamodb":
            return _dynamodb(client, original, operation, params, usage, indexes)
        response = original(client, operation, params)
        if service == "sqs":
            _sqs(operation, params, response, usage)
        else:
            usage.add(service, operation)
        return response

    BaseClient._make_api_call = metered


def restore_aws_clients() -> None:
    """Undo ``instrument_aws_clients`` (tests)."""
    if _installed:
        BaseClient._make_api_call = _installed.pop()


class _IndexKeys:
    """The hash and range key attributes of each table's global secondary indexes (DescribeTable,
    not counted), so a write can be charged for the indexes it touches."""

    def __init__(self, call: Callable[..., Any]) -> None:
        self._call = call
        self._known: dict[str, list[set[str]]] = {}
        self._lock = threading.Lock()

    def of(self, client: BaseClient, table: str) -> list[set[str]]:
        with self._lock:
            if table in self._known:
                return self._known[table]
        try:
            described = self._call(client, "DescribeTable", {"TableName": table})["Table"]
        except ClientError:
            return []
        keys = [
            {key["AttributeName"] for key in index["KeySchema"]}
            for index in described.get("GlobalSecondaryIndexes", [])
        ]
        with self._lock:
            self._known[table] = keys
        return keys

    def writes(self, client: BaseClient, table: str, *items: Mapping[str, Any] | None) -> int:
        """Index writes for an item change: one write of the item's size per index it is (or was) in."""
        total = 0
        for keys in self.of(client, table):
            sizes = [item_size(item) for item in items if item and keys <= set(item)]
            if sizes:
                total += write_units(max(sizes))
        return total


_RETURN_ALL = {"PutItem": "ALL_OLD", "DeleteItem": "ALL_OLD", "UpdateItem": "ALL_NEW"}


def _dynamodb(
    client: BaseClient,
    call: Callable[..., Any],
    operation: str,
    params: dict[str, Any],
    usage: Usage,
    indexes: _IndexKeys,
) -> Any:
    injected = False
    if operation in _RETURN_ALL and params.get("ReturnValues", "NONE") == "NONE":
        params = {**params, "ReturnValues": _RETURN_ALL[operation]}
        injected = True
    table = str(params.get("TableName", ""))
    try:
        response = call(client, operation, params)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code == "ConditionalCheckFailedException":  # a failed condition still costs the write
            size = item_size(params.get("Item")) if operation == "PutItem" else 0
            _add(usage, "WRU", table, write_units(size))
        elif code == "TransactionCanceledException":
            _add(usage, "WRU", "(transactions)", 2 * len(params.get("TransactItems", [])))
        raise
    usage.add("dynamodb", operation)
    returned = response.get("Attributes")
    if operation == "PutItem":
        new, old = params.get("Item"), returned
        _add(usage, "WRU", table, write_units(max(item_size(new), item_size(old))))
        _add(usage, "WRU", table, indexes.writes(client, table, new, old))
    elif operation == "UpdateItem":
        new = returned if params["ReturnValues"] == "ALL_NEW" else None
        _add(usage, "WRU", table, write_units(item_size(new)))
        _add(usage, "WRU", table, indexes.writes(client, table, new))
    elif operation == "DeleteItem":
        _add(usage, "WRU", table, write_units(item_size(returned)))
        _add(usage, "WRU", table, indexes.writes(client, table, returned))
    elif operation == "GetItem":
        _add(usage, "RRU", table, read_units(item_size(response.get("Item")), consistent=_consistent(params)))
    elif operation in ("Query", "Scan"):
        items = response.get("Items", [])
        size = sum(item_size(item) for item in items)
        scanned, count = response.get("ScannedCount", len(items)), response.get("Count", len(items))
        if count and scanned > count:  # a filter dropped items it had read: they were paid for too
            size = math.ceil(size * scanned / count)
        _add(usage, "RRU", table, read_units(size, consistent=_consistent(params)))
    elif operation == "BatchGetItem":
        for name, found in response.get("Responses", {}).items():
            consistent = bool(params["RequestItems"].get(name, {}).get("ConsistentRead"))
            for item in found:
                _add(usage, "RRU", name, read_units(item_size(item), consistent=consistent))
    elif operation == "BatchWriteItem":
        for name, requests in params.get("RequestItems", {}).items():
            for request in requests:
                put = request.get("PutRequest", {}).get("Item")
                _add(usage, "WRU", name, write_units(item_size(put)) + indexes.writes(client, name, put))
    elif operation == "TransactWriteItems":
        for action in params.get("TransactItems", []):
            (kind, body), *_ = action.items()
            size = item_size(body.get("Item")) if kind == "Put" else 0
            _add(usage, "WRU", str(body.get("TableName", "")), 2 * write_units(size))
    elif operation == "TransactGetItems":
        for got, action in zip(response.get("Responses", []), params.get("TransactItems", []), strict=False):
            name = str(action.get("Get", {}).get("TableName", ""))
            _add(usage, "RRU", name, 2 * read_units(item_size(got.get("Item")), consistent=True))
    if injected:
        response = {key: value for key, value in response.items() if key != "Attributes"}
    return response


def _consistent(params: Mapping[str, Any]) -> bool:
    return bool(params.get("ConsistentRead"))


def _add(usage: Usage, unit: str, table: str, amount: float) -> None:
    if amount:
        usage.add("dynamodb", unit, amount)
        usage.add("dynamodb", f"{unit} {table}", amount)


def _sqs(operation: str, params: Mapping[str, Any], response: Mapping[str, Any], usage: Usage) -> None:
    if operation == "ReceiveMessage":
        usage.add("sqs", "ReceiveMessage" if response.get("Messages") else "ReceiveMessage (empty)")
    elif operation == "SendMessage":
        size = len(str(params.get("MessageBody", "")).encode("utf-8"))
        usage.add("sqs", operation, max(1, math.ceil(size / SQS_REQUEST_CHUNK_BYTES)))
    else:
        usage.add("sqs", operation)


class CountingStream:
    """A text stream that passes everything on and counts the UTF-8 bytes written through it."""

    def __init__(self, inner: TextIO, usage: Usage) -> None:
        self._inner = inner
        self._usage = usage

    def write(self, text: str) -> int:
        self._usage.add("logs", "bytes", len(text.encode("utf-8", errors="replace")))
        return self._inner.write(text)

    def flush(self) -> None:
        self._inner.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)
