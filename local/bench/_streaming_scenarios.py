"""The streaming benchmark's scenarios (not product code): what is asked, how fast the fixture
model streams, how many visitors at once; each returns raw samples or figures for the report."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
import uuid
from dataclasses import dataclass

from websockets.asyncio.client import connect

from local.bench._streaming_harness import (
    HANDLERS,
    QUESTIONS,
    ROOT,
    Fixture,
    Sample,
    Stack,
    ask,
    join_fixture,
    timed_import,
)

COLD_START_RUNS = 9


# --- the measurements ---


async def warm_up(stack: Stack, fixture: Fixture) -> None:
    fixture.script(tokens=5, tokens_per_second=500)
    async with connect(stack.visitor_url()) as ws:
        for question in QUESTIONS:
            await ask(ws, question)
    fixture.stats()


async def sequential(stack: Stack, fixture: Fixture, conversations: int, per_conversation: int) -> list[Sample]:
    fixture.script(tokens=10, tokens_per_second=200)
    samples: list[Sample] = []
    for _ in range(conversations):
        async with connect(stack.visitor_url()) as ws:
            conversation_id = None
            for index in range(per_conversation):
                sample = await ask(ws, QUESTIONS[index % len(QUESTIONS)], conversation_id=conversation_id)
                conversation_id = sample.conversation_id
                samples.append(sample)
                await asyncio.sleep(0.05)
    return join_fixture(samples, fixture)


async def token_rate(stack: Stack, fixture: Fixture, rate: int, seconds: float, answers: int) -> list[Sample]:
    fixture.script(tokens=int(rate * seconds), tokens_per_second=rate)
    samples = []
    async with connect(stack.visitor_url()) as ws:
        conversation_id = None
        for index in range(answers):
            sample = await ask(ws, QUESTIONS[index % len(QUESTIONS)], conversation_id=conversation_id)
            conversation_id = sample.conversation_id
            samples.append(sample)
    return join_fixture(samples, fixture)


async def closed_loop(stack: Stack, fixture: Fixture, conversations: int, seconds: float) -> tuple[list[Sample], int]:
    """``conversations`` visitors asking again shortly after each answer ends, for ``seconds``."""
    fixture.script(tokens=40, tokens_per_second=50)  # 0.8 s answers: the conversations overlap
    samples: list[Sample] = []
    errors = 0
    stop_at = time.monotonic() + seconds

    async def visitor(number: int) -> None:
        nonlocal errors
        async with connect(stack.visitor_url(), open_timeout=60) as ws:
            await asyncio.sleep(random.uniform(0, 0.8))  # spread the starts over one answer
            turn = 0
            conversation_id = None
            while time.monotonic() < stop_at:
                sample = await ask(ws, QUESTIONS[(number + turn) % len(QUESTIONS)], conversation_id=conversation_id)
                conversation_id = sample.conversation_id or conversation_id
                turn += 1
                if sample.error:
                    errors += 1
                samples.append(sample)
                await asyncio.sleep(random.uniform(0.05, 0.25))

    await asyncio.gather(*(visitor(n) for n in range(conversations)))
    return join_fixture(samples, fixture), errors


async def reuse(stack: Stack, fixture: Fixture, rounds: int = 5) -> dict[str, float]:
    """Per round: a new question in one conversation (fresh), the same text as the first question of
    another conversation (the cache), and a new question asked by two visitors at once (shared in
    flight). Same text, same marker: the fixture's records count how often the model was asked."""
    fixture.script(tokens=30, tokens_per_second=100)
    fresh_ms, cached_ms, cached_frames, fresh_frames = [], [], [], []
    asked_for_repeats = asked_for_pairs = 0
    for round_number in range(rounds):
        marker = uuid.uuid4().hex[:16]
        question = f"What are your opening hours on holiday {round_number}?"
        async with connect(stack.visitor_url()) as first, connect(stack.visitor_url()) as second:
            fresh = await ask(first, question, marker)
            await asyncio.sleep(0.3)  # let the first answer's job end (it shares this machine's cores)
            cached = await ask(second, question, marker)
        fresh_ms.append((fresh.deltas[0] - fresh.sent) * 1000)
        cached_ms.append((cached.deltas[0] - cached.sent) * 1000)
        fresh_frames.append(len(fresh.deltas))
        cached_frames.append(len(cached.deltas))
        asked_for_repeats += fixture.requests_for(marker)
        pair = uuid.uuid4().hex[:16]
        async with connect(stack.visitor_url()) as one, connect(stack.visitor_url()) as two:
            await asyncio.gather(
                ask(one, f"Do you ship to island {round_number}?", pair),
                ask(two, f"Do you ship to island {round_number}?", pair),
            )
        asked_for_pairs += fixture.requests_for(pair)
    return {
        "rounds": rounds,
        "fresh_first_delta_ms": statistics.median(fresh_ms),
        "cached_first_delta_ms": statistics.median(cached_ms),
        "fresh_frames": statistics.median(fresh_frames),
        "cached_frames": statistics.median(cached_frames),
        "model_requests_for_repeats": asked_for_repeats,
        "model_requests_for_pairs": asked_for_pairs,
    }


def idle_cpu(stack: Stack, seconds: float = 5.0) -> float:
    before = stack.cpu_seconds()
    time.sleep(seconds)
    return (stack.cpu_seconds() - before) / seconds * 100


@dataclass
class Level:
    conversations: int
    samples: list[Sample]
    errors: int
    cpu_seconds: float  # of the stack process and its children (moto, redis-server)
    elapsed: float


# --- cold start ---


def cold_start() -> dict[str, float]:
    """Median import time (ms) in fresh processes, all measured in the same interleaved rounds."""
    statements = {"boto3": "import boto3"} | {name: f"import functions.{name}.handler" for name in HANDLERS}
    lambda_env = {"LAMBDA_TASK_ROOT": str(ROOT), "AWS_LAMBDA_FUNCTION_NAME": "bench", "AWS_REGION": "us-east-1"}
    # In the order shared/model/factory.py imports them when it builds the first model.
    first_use = {
        "openai-compatible adapter": "import shared.model.chat_answers, shared.model.openai_compatible",
        "Bedrock adapter": "import shared.model.chat_answers, shared.model.aws_errors, shared.model.bedrock",
        "SageMaker adapter": "import shared.model.chat_answers, shared.model.aws_errors, shared.model.sagemaker",
    }
    # What the admin function cannot go below with FastAPI: the framework, Mangum, and the settings
    # and Powertools every handler imports.
    floor = {"admin floor": "import fastapi, mangum, pydantic_settings, aws_lambda_powertools"}
    runs: dict[str, list[float]] = {key: [] for key in [*statements, *floor, *first_use, "tracer"]}
    for _ in range(COLD_START_RUNS):
        for key, statement in {**statements, **floor}.items():
            runs[key].append(timed_import(statement))
        for key, statement in first_use.items():
            runs[key].append(timed_import(f"import functions.generate.handler; t = time.perf_counter(); {statement}"))
        # What the first traced invocation pays in Lambda (the X-Ray SDK and its patches).
        runs["tracer"].append(
            timed_import(
                "import functions.generate.handler; from shared.observability import tracer; t = time.perf_counter();"
                " tracer.real()",
                env=lambda_env,
            )
        )
    return {key: statistics.median(values) for key, values in runs.items()}
