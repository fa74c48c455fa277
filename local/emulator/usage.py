"""What AWS would meter for the emulated API, counted as it happens (``GET /_emulator/usage``).

- WebSocket messages, each way, in API Gateway's 32 KB billing increments (a frame of 40 KB is two
  messages); ``$connect``/``$disconnect`` are not messages.
- Connection time: per connection, in milliseconds and rounded up to whole minutes.
- Lambda invocations per function, with their durations (billed per started millisecond).
- ``aws``: counters that instrumented AWS clients add (``add``), e.g. DynamoDB request units; the
  emulator itself adds none.

``DELETE /_emulator/usage`` starts the counts again (a benchmark measures from a known point).
"""

from __future__ import annotations

import math
import threading
from collections import defaultdict
from typing import Any

from local.emulator.config import FRAME_SIZE_BYTES


def billed_messages(size_bytes: int) -> int:
    """API Gateway WebSocket messages for one frame: one per started 32 KB."""
    return max(1, math.ceil(size_bytes / FRAME_SIZE_BYTES))


class Usage:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.messages_in = 0
            self.messages_out = 0
            self.bytes_in = 0
            self.bytes_out = 0
            self.connections = 0
            self.connection_ms = 0.0
            self.connection_minutes = 0
            self.invocations: dict[str, int] = defaultdict(int)
            self.duration_ms: dict[str, float] = defaultdict(float)
            self.billed_ms: dict[str, int] = defaultdict(int)
            self.aws: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def frame_in(self, size_bytes: int) -> None:
        with self._lock:
            self.messages_in += billed_messages(size_bytes)
            self.bytes_in += size_bytes

    def frame_out(self, size_bytes: int) -> None:
        with self._lock:
            self.messages_out += billed_messages(size_bytes)
            self.bytes_out += size_bytes

    def connection_closed(self, duration_ms: float) -> None:
        with self._lock:
            self.connections += 1
            self.connection_ms += duration_ms
            self.connection_minutes += max(1, math.ceil(duration_ms / 60_000))

    def invocation(self, function: str, duration_ms: float) -> None:
        with self._lock:
            self.invocations[function] += 1
            self.duration_ms[function] += duration_ms
            self.billed_ms[function] += max(1, math.ceil(duration_ms))

    def add(self, service: str, counter: str, amount: float = 1.0) -> None:
        with self._lock:
            self.aws[service][counter] += amount

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "websocket": {
                    "messagesIn": self.messages_in,
                    "messagesOut": self.messages_out,
                    "bytesIn": self.bytes_in,
                    "bytesOut": self.bytes_out,
                    "connections": self.connections,
                    "connectionMs": round(self.connection_ms, 1),
                    "connectionMinutes": self.connection_minutes,
                },
                "lambda": {
                    name: {
                        "invocations": count,
                        "durationMs": round(self.duration_ms[name], 1),
                        "billedMs": self.billed_ms[name],
                    }
                    for name, count in sorted(self.invocations.items())
                },
                "aws": {service: dict(sorted(counters.items())) for service, counters in sorted(self.aws.items())},
            }
