"""DynamoDB on-demand request units from item sizes, by AWS's published rules.

- Item size: each attribute's name (UTF-8 bytes) plus its value: a string's UTF-8 bytes, a binary's
  bytes, a number ~1 byte per two significant digits + 1, a boolean or null 1 byte, a list or map
  3 bytes + 1 byte per element + the elements (a map's element names included), sets their members.
- Reads: one read request unit (RRU) per 4 KB for a strongly consistent read, half for an eventually
  consistent one; a Query or Scan sums the sizes of the items it reads before rounding up; a read that
  finds nothing still costs the minimum.
- Writes: one write request unit (WRU) per 1 KB of the larger of the old and new item; a condition
  that fails still costs the write; a transaction costs each item twice. Each global secondary index
  whose key the written item carries costs a write of its projected size (kefu projects ALL).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping
from typing import Any

READ_UNIT_BYTES = 4096
WRITE_UNIT_BYTES = 1024


def value_size(value: Mapping[str, Any]) -> int:
    (kind, content), *_ = value.items()
    if kind == "S":
        return len(str(content).encode("utf-8"))
    if kind == "N":
        digits = str(content).lstrip("-").replace(".", "").lstrip("0") or "0"
        return math.ceil(len(digits.rstrip("0") or "0") / 2) + 1
    if kind == "B":
        return _binary_size(content)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "SS":
        return sum(len(str(s).encode("utf-8")) for s in content)
    if kind == "NS":
        return sum(value_size({"N": n}) for n in content)
    if kind == "BS":
        return sum(_binary_size(b) for b in content)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in content)
    if kind == "M":
        return 3 + sum(1 + len(name.encode("utf-8")) + value_size(element) for name, element in content.items())
    raise ValueError(f"unknown DynamoDB type {kind!r}")


def _binary_size(content: Any) -> int:
    if isinstance(content, bytes | bytearray):
        return len(content)
    return len(base64.b64decode(content))


def item_size(item: Mapping[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode("utf-8")) + value_size(value) for name, value in item.items())


def read_units(total_bytes: int, *, consistent: bool) -> float:
    """Units of one read request (GetItem, or one Query/Scan page): the minimum when nothing is found."""
    units = max(1, math.ceil(total_bytes / READ_UNIT_BYTES))
    return units if consistent else units / 2


def write_units(size_bytes: int) -> int:
    return max(1, math.ceil(size_bytes / WRITE_UNIT_BYTES))
