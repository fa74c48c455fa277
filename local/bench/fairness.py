"""`make bench` part "fairness": one tenant flooded at 10x its generate concurrency; another tenant's
answer time, alone and during the flood (issue 11).

The stack of ``make run`` (local/bench/_stack.py) with the fixture model streaming every answer at a
fixed rate, the SQS -> generate mapping at ``make run``'s 8 concurrent invocations (a small reserved
concurrency), and two tenants with the demo FAQ. The quiet tenant asks questions one after another:
first alone, then while the flooded tenant's visitors (10 x its ``KEFU_GENERATE_GROUPS_PER_TENANT``
conversations) ask again as soon as each answer ends. Answer time: ``sendMessage`` -> ``answer.end``.
Run twice: with the per-tenant bound (2 message groups per tenant), and with 100 groups per tenant
(one per conversation in practice: how jobs were grouped before the bound).
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from websockets.asyncio.client import connect

from local.bench import machine_line
from local.bench._streaming_harness import QUESTIONS, Fixture, Stack, ask
from local.stats import percentile

GENERATE_CONCURRENCY = 8  # the event source mapping's concurrent batches (make run's default)
GROUPS_PER_TENANT = 2
FLOOD_FACTOR = 10


@dataclass
class Outcome:
    groups_per_tenant: int
    alone_ms: list[float]
    flooded_ms: list[float]
    flood_answers: int
    flood_errors: int
    quiet_errors: int


async def _quiet(stack: Stack, tenant: dict[str, str], questions: int) -> tuple[list[float], int]:
    """The quiet tenant's visitor asks ``questions`` questions in one conversation, one after another."""
    times, errors = [], 0
    async with connect(stack.visitor_url(tenant["tenantId"], tenant["widgetKey"]), open_timeout=60) as ws:
        conversation_id = None
        for index in range(questions):
            sample = await ask(ws, QUESTIONS[index % len(QUESTIONS)], conversation_id=conversation_id)
            conversation_id = sample.conversation_id or conversation_id
            if sample.error or not sample.end:
                errors += 1
            else:
                times.append((sample.end - sample.sent) * 1000)
    return times, errors


async def _flood(stack: Stack, conversations: int, stop: asyncio.Event) -> tuple[int, int]:
    """The flooded tenant (the demo tenant): ``conversations`` visitors asking again at once."""
    answers = errors = 0

    async def visitor(number: int) -> None:
        nonlocal answers, errors
        async with connect(stack.visitor_url(), open_timeout=60) as ws:
            conversation_id = None
            turn = 0
            while not stop.is_set():
                sample = await ask(ws, QUESTIONS[(number + turn) % len(QUESTIONS)], conversation_id=conversation_id)
                conversation_id = sample.conversation_id or conversation_id
                turn += 1
                if sample.error or not sample.end:
                    errors += 1
                else:
                    answers += 1

    await asyncio.gather(*(visitor(n) for n in range(conversations)))
    return answers, errors


async def measure(stack: Stack, fixture: Fixture, *, questions: int, groups_per_tenant: int) -> Outcome:
    from local.run import seed_demo_tenant

    quiet = await asyncio.to_thread(seed_demo_tenant, stack.info["admin_url"], stack.info["admin_key"])
    fixture.script(tokens=20, tokens_per_second=50)  # 0.4 s answers
    await _quiet(stack, quiet, 2)  # warm
    alone, quiet_errors = await _quiet(stack, quiet, questions)
    stop = asyncio.Event()
    flood = asyncio.create_task(_flood(stack, FLOOD_FACTOR * GROUPS_PER_TENANT, stop))
    await asyncio.sleep(3)  # the flood fills the queue first
    flooded, more_errors = await _quiet(stack, quiet, questions)
    stop.set()
    flood_answers, flood_errors = await asyncio.wait_for(flood, 120)
    return Outcome(groups_per_tenant, alone, flooded, flood_answers, flood_errors, quiet_errors + more_errors)


def run_once(groups_per_tenant: int, questions: int) -> Outcome:
    env = {"KEFU_GENERATE_GROUPS_PER_TENANT": str(groups_per_tenant)}
    with Fixture() as fixture, tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp:
        with Stack(fixture.base_url, Path(tmp), max_concurrency=GENERATE_CONCURRENCY, env=env) as stack:
            return asyncio.run(measure(stack, fixture, questions=questions, groups_per_tenant=groups_per_tenant))


def run() -> str:
    started = time.monotonic()
    outcomes = [run_once(GROUPS_PER_TENANT, 15), run_once(100, 15)]
    return report(outcomes, time.monotonic() - started)


def _median(values: list[float]) -> str:
    return f"{statistics.median(values):.0f} ms" if values else "—"


def _p90(values: list[float]) -> str:
    if not values:
        return "—"
    return f"{percentile(values, 90):.0f} ms"


def report(outcomes: list[Outcome], elapsed: float) -> str:
    rows = []
    for o in outcomes:
        change = (
            f"{(statistics.median(o.flooded_ms) / statistics.median(o.alone_ms) - 1) * 100:+.0f}%"
            if o.alone_ms and o.flooded_ms
            else "—"
        )
        label = "bounded" if o.groups_per_tenant == GROUPS_PER_TENANT else "one group per conversation (before)"
        rows.append(
            f"| {o.groups_per_tenant} ({label}) | {_median(o.alone_ms)} / {_p90(o.alone_ms)} | "
            f"{_median(o.flooded_ms)} / {_p90(o.flooded_ms)} | {change} | {o.flood_answers} | "
            f"{o.flood_errors + o.quiet_errors} |"
        )
    return "\n".join(
        [
            "## Fairness: one tenant flooded, another tenant's answers",
            "",
            machine_line(),
            "",
            f"`python -m local.bench fairness` ({elapsed:.0f} s): the generate mapping at {GENERATE_CONCURRENCY} "
            f"concurrent invocations; the flooded tenant has {FLOOD_FACTOR * GROUPS_PER_TENANT} visitors asking "
            f"back to back ({FLOOD_FACTOR}x its bound of {GROUPS_PER_TENANT} answers at once); the fixture model "
            "streams every answer in 0.4 s; the quiet tenant asks 15 questions in a row, alone, then during "
            "the flood (sendMessage -> answer.end, median / p90).",
            "",
            "| message groups per tenant | quiet tenant alone | during the flood | median change | "
            "flood answers | errors |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
