"""DynamoDB request units from item sizes, and the emulator's WebSocket message metering (local/cost)."""

from __future__ import annotations

import pytest

from local.cost.units import item_size, read_units, value_size, write_units
from local.emulator.usage import Usage, billed_messages


def test_item_size_counts_names_and_values() -> None:
    # "pk" (2) + "t_1" (3); "n" (1) + 12345 (3 significant digit pairs -> 3 + 1); "ok" (2) + true (1)
    item = {"pk": {"S": "t_1"}, "n": {"N": "12345"}, "ok": {"BOOL": True}}
    assert item_size(item) == 5 + 5 + 3


def test_strings_count_utf8_bytes() -> None:
    assert value_size({"S": "退款"}) == 6


def test_lists_and_maps_add_their_overhead() -> None:
    assert value_size({"L": [{"S": "ab"}, {"S": "c"}]}) == 3 + (1 + 2) + (1 + 1)
    assert value_size({"M": {"k": {"S": "v"}}}) == 3 + 1 + 1 + 1


def test_binary_is_measured_decoded() -> None:
    assert value_size({"B": "AAAA"}) == 3  # base64 of three bytes
    assert value_size({"B": b"\x00\x01"}) == 2


@pytest.mark.parametrize(
    ("size", "consistent", "units"),
    [(0, False, 0.5), (0, True, 1), (4096, False, 0.5), (4097, False, 1.0), (10_000, True, 3)],
)
def test_read_units_round_up_per_4_kb(size: int, consistent: bool, units: float) -> None:
    assert read_units(size, consistent=consistent) == units


@pytest.mark.parametrize(("size", "units"), [(0, 1), (1024, 1), (1025, 2), (3500, 4)])
def test_write_units_round_up_per_kb(size: int, units: int) -> None:
    assert write_units(size) == units


def test_websocket_messages_are_billed_per_started_32_kb() -> None:
    assert [billed_messages(n) for n in (1, 32 * 1024, 32 * 1024 + 1, 100_000)] == [1, 1, 2, 4]


def test_usage_rounds_each_connection_up_to_a_minute() -> None:
    usage = Usage()
    usage.connection_closed(500)
    usage.connection_closed(61_000)
    usage.invocation("f", 0.2)
    snapshot = usage.snapshot()
    assert snapshot["websocket"]["connectionMinutes"] == 1 + 2
    assert snapshot["lambda"]["f"] == {"invocations": 1, "durationMs": 0.2, "billedMs": 1}
