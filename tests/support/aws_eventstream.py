"""An encoder for AWS's event stream format (``application/vnd.amazon.eventstream``), written from
its documented layout, for test servers that speak Bedrock's and SageMaker's streaming APIs.

One message::

    prelude   total length (uint32 BE) | headers length (uint32 BE) | CRC32 of those 8 bytes (uint32 BE)
    headers   repeated: name length (uint8) | name (UTF-8) | value type (uint8) | value
              (type 7 = string: length (uint16 BE) | UTF-8 bytes)
    payload   bytes
    trailer   CRC32 of everything above (uint32 BE)
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Any

_STRING = 7
_PRELUDE_BYTES = 12
_CRC_BYTES = 4


def encode_headers(headers: dict[str, str]) -> bytes:
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name
        encoded += struct.pack(">BH", _STRING, len(raw_value)) + raw_value
    return encoded


def encode_message(headers: dict[str, str], payload: bytes) -> bytes:
    raw_headers = encode_headers(headers)
    total = _PRELUDE_BYTES + len(raw_headers) + len(payload) + _CRC_BYTES
    prelude = struct.pack(">II", total, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude) & 0xFFFFFFFF)
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body) & 0xFFFFFFFF)


def event(event_type: str, payload: Any, *, content_type: str = "application/json") -> bytes:
    """An ``event`` message; dict payloads are JSON (Bedrock), bytes go as they are (SageMaker)."""
    raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {":event-type": event_type, ":content-type": content_type, ":message-type": "event"}
    return encode_message(headers, raw)


def exception(exception_type: str, message: str) -> bytes:
    """An ``exception`` message: a modelled error inside the stream (botocore raises EventStreamError)."""
    headers = {":exception-type": exception_type, ":content-type": "application/json", ":message-type": "exception"}
    return encode_message(headers, json.dumps({"message": message}).encode())
