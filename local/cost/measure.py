"""The per-conversation benchmark: conversations through the local stack, with AWS's meters running.

The stack is local/cost/_stack.py (the real handlers in the emulator, moto's DynamoDB and SQS, no Redis
as in the default profile) and the model is the streaming fixture of local/bench (an OpenAI-compatible
server sending ``ANSWER_TOKENS`` tokens at ``TOKENS_PER_SECOND``: generate pays for the wait as it
would on a real model). One visitor at a time opens the WebSocket, asks ``QUESTIONS_PER_CONVERSATION``
questions (each after the previous answer ended), and leaves. Before the measured conversations a
warm-up one loads every handler; the meters are reset after it (``DELETE /_emulator/usage``).
"""

from __future__ import annotations

import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from local.bench import machine_line
from local.bench._streaming_harness import HANDLERS, QUESTIONS, Fixture, Stack, ask, timed_import
from shared.settings import Settings

CONVERSATIONS = 20
QUESTIONS_PER_CONVERSATION = 3
ANSWER_TOKENS = 120
TOKENS_PER_SECOND = 50
COLD_START_RUNS = 3
VISITOR_LIMITS = (
    "rate_visitor_messages_per_minute",
    "rate_visitor_characters_per_minute",
    "rate_connection_frames_per_10s",
)


async def _conversation(stack: Stack, questions: int, offset: int) -> int:
    """One visitor's conversation; returns how many answers ended."""
    answered = 0
    async with connect(stack.visitor_url(), open_timeout=60) as ws:
        conversation_id = None
        for turn in range(questions):
            sample = await ask(ws, QUESTIONS[(offset + turn) % len(QUESTIONS)], conversation_id=conversation_id)
            conversation_id = sample.conversation_id or conversation_id
            answered += sample.end > 0 and not sample.error
    return answered


async def _run(stack: Stack, fixture: Fixture, conversations: int, questions: int) -> tuple[int, float, int]:
    await _conversation(stack, questions, 0)  # warm-up: imports, the tenant's config cache
    await asyncio.sleep(1.0)  # its $disconnect finishes
    httpx.delete(f"{stack.info['admin_url']}/_emulator/usage")
    fixture.stats()
    before = sum(fixture.seen.values())
    started = time.monotonic()
    answered = 0
    for number in range(conversations):
        answered += await _conversation(stack, questions, number)
    await asyncio.sleep(1.5)  # the last $disconnect and the generate job's deletion are metered too
    fixture.stats()
    return answered, time.monotonic() - started, sum(fixture.seen.values()) - before


def cold_starts() -> dict[str, float]:
    """Median import time (ms) of each handler in a fresh process: the INIT a cold start bills."""
    runs: dict[str, list[float]] = {name: [] for name in HANDLERS}
    for _ in range(COLD_START_RUNS):
        for name in HANDLERS:
            runs[name].append(timed_import(f"import functions.{name}.handler"))
    return {name: round(statistics.median(values), 1) for name, values in runs.items()}


def measure(
    conversations: int = CONVERSATIONS,
    questions: int = QUESTIONS_PER_CONVERSATION,
    settings: dict[str, str] | None = None,
    cold: bool = True,
) -> dict[str, Any]:
    """Run the benchmark and return the meters' counts with what produced them; ``settings`` are extra
    ``KEFU_*`` values of the stack (a variant), ``cold`` also measures the handlers' import times."""
    with tempfile.TemporaryDirectory(prefix="kefu-cost-") as state, Fixture() as fixture:
        fixture.script(tokens=ANSWER_TOKENS, tokens_per_second=TOKENS_PER_SECOND)
        env = {
            # What AWS runs with: INFO logs and Powertools metrics (both are CloudWatch Logs bytes).
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_METRICS_DISABLED": "false",
            # The visitor limits stay on (their counters are DynamoDB writes); only the per-address ones
            # are raised, since every benchmark visitor comes from 127.0.0.1.
            "KEFU_RATE_ADDRESS_MESSAGES_PER_MINUTE": "100000",
            "KEFU_RATE_ADDRESS_CONNECTIONS_PER_MINUTE": "100000",
            "KEFU_RATE_TENANT_MESSAGES_PER_MINUTE": "100000",
            # The benchmark Stack turns the per-visitor limits off for its closed loops: back to defaults.
            **{f"KEFU_{field.upper()}": str(Settings.model_fields[field].default) for field in VISITOR_LIMITS},
            **(settings or {}),
        }
        with Stack(fixture.base_url, Path(state), env=env, module="local.cost._stack") as stack:
            answered, seconds, model_requests = asyncio.run(_run(stack, fixture, conversations, questions))
            usage = httpx.get(f"{stack.info['admin_url']}/_emulator/usage").json()
    return {
        "machine": machine_line(),
        "conversations": conversations,
        "questionsPerConversation": questions,
        "answered": answered,
        "modelRequests": model_requests,
        "settings": settings or {},
        "answerTokens": ANSWER_TOKENS,
        "tokensPerSecond": TOKENS_PER_SECOND,
        "seconds": round(seconds, 1),
        "usage": usage,
        "coldStartMs": cold_starts() if cold else {},
    }


def save(result: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
