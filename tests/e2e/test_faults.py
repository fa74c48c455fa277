"""The fault-injection suite, short version (`make faults` runs the long one and writes
docs/reliability.md): concurrent visitors chat through the real local stack while the model server is
killed mid-stream, refuses, answers 429/500/503, hangs or crawls, redis-server restarts, moto (DynamoDB
and SQS) restarts, and the generate function crashes mid-answer. Every message gets exactly one terminal
outcome within its fault's bound (``bound_for``: longer where SQS redelivery is part of the fault), none
is answered twice or stored twice, and no cut answer passes as complete (tests/support/faults.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.support.faults import CRASH, FAULTS, FaultStack, run_suite

pytestmark = pytest.mark.e2e

VISITORS = 3
MESSAGES = 2
# Seconds a message may take without SQS redelivery (the model's deadlines and retries, the slow model's
# 12 s answer), on a machine shared with other work; faults with redelivery add its visibility timeout.
ANSWER_SECONDS = 30.0


@pytest.fixture(scope="module")
def fault_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultStack]:
    stack = FaultStack(tmp_path_factory.mktemp("kefu-faults")).start()
    try:
        yield stack
    finally:
        stack.stop()


@pytest.mark.parametrize("fault", [*FAULTS, CRASH])
def test_every_message_gets_one_honest_outcome(fault_stack: FaultStack, fault: str) -> None:
    results = asyncio.run(
        run_suite(fault_stack, visitors=VISITORS, messages=MESSAGES, answer_seconds=ANSWER_SECONDS, only=[fault])
    )
    assert results and all(result.sent for result in results)
    problems = [problem for result in results for problem in result.problems]
    assert not problems, "\n".join(problems)
    assert sum(len(result.sent) for result in results) >= VISITORS * MESSAGES
