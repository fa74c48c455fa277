"""`make bench` part "streaming": the model gateway and the streaming path, measured end to end.

Everything runs on this machine: the stack of ``make run`` (moto, redis-server, the emulator running
the real handlers; local/bench/_stack.py) with ``KEFU_LLM_PROVIDER=openai`` pointing at a fixture
OpenAI-compatible server that streams tokens at a fixed rate (local/bench/_fixture.py), and visitors
on real WebSocket connections. The fixture records when each request arrived and when its first
token left, so its own time to first token is subtracted:

    added latency = (sendMessage -> first answer.delta at the client) - (fixture's own first-token time)

It is what kefu adds: the message function and ack, SQS, the generate function (history, retrieve,
prompt), the coalescer, @connections and the WebSocket hop.

The processes and one timed question: `_streaming_harness.py`; what is measured:
`_streaming_scenarios.py`; the Markdown section: `_streaming_report.py`.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path

from local.bench._streaming_harness import Fixture, Stack
from local.bench._streaming_report import GOAL_P99_MS, report
from local.bench._streaming_scenarios import (
    Level,
    closed_loop,
    cold_start,
    idle_cpu,
    reuse,
    sequential,
    token_rate,
    warm_up,
)
from local.stats import percentile


def run() -> str:
    from local.bench import _sqs_probe

    load = " / ".join(f"{value:.2f}" for value in os.getloadavg())

    cold = cold_start()
    sqs = _sqs_probe.measure()
    with Fixture() as fixture:
        with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp, Stack(fixture.base_url, Path(tmp)) as stack:
            asyncio.run(warm_up(stack, fixture))
            idle = idle_cpu(stack)
            baseline = asyncio.run(sequential(stack, fixture, conversations=5, per_conversation=12))
            rates = {
                rate: asyncio.run(token_rate(stack, fixture, rate, seconds, 3))
                for rate, seconds in ((20, 3), (100, 2), (1000, 1))
            }
            reused = asyncio.run(reuse(stack, fixture))
        sweep: list[Level] = []
        for conversations in (1, 2, 4, 8, 12, 16, 24, 32):
            # A fresh stack per level, so every level starts from the same (small) local database.
            with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp, Stack(fixture.base_url, Path(tmp)) as stack:
                asyncio.run(warm_up(stack, fixture))
                cpu_before, started = stack.cpu_seconds(), time.monotonic()
                samples, errors = asyncio.run(closed_loop(stack, fixture, conversations, seconds=8))
                level = Level(
                    conversations, samples, errors, stack.cpu_seconds() - cpu_before, time.monotonic() - started
                )
            sweep.append(level)
            if samples and percentile([s.added_ms for s in samples], 99) > 3 * GOAL_P99_MS:
                break
    return report(cold, baseline, rates, sweep, reused, idle, sqs, load)
