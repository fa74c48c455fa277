"""What a visitor sees when the model misbehaves, through `python -m local.run` (real handlers, the SQS
FIFO mapping, moto, redis-server) with the deployment's model on a real OpenAI-compatible server:

- the server dies mid-answer: the answer ends with `answer.end` `complete: false`, is stored as
  incomplete, and the next visitor asking the same question gets a fresh answer, not the cut one;
- the server is down or stuck: `error` `model_unavailable` naming the message within the first-token
  budget, and the next message of the same conversation is answered at once (no head-of-line stall
  behind a job waiting out the SQS visibility timeout).

Every visitor message gets exactly one terminal frame.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.client import LocalStackInfo, ask, open_visitor, send_message, silent_for
from tests.e2e.conftest import running_stack
from tests.support.openai_sse_server import OpenAISSEServer, Script

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]

TOKENS = ["Deliveries ", "take ", "2 to 4 ", "working days ", "[1]."]
BUDGET_SECONDS = 3
# Generous: the outcome must come within the budget plus retrieval and queueing, and far below the
# 150 s the local queue's visibility timeout would cost.
BOUND_SECONDS = 25


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAISSEServer]:
    with OpenAISSEServer(Script(tokens=TOKENS)) as server:
        yield server


@pytest.fixture(scope="module")
def stack(model_server: OpenAISSEServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStackInfo]:
    state_dir: Path = tmp_path_factory.mktemp("kefu-model-faults")
    env = {
        "KEFU_LLM_PROVIDER": "openai",
        "KEFU_LLM_BASE_URL": model_server.base_url,
        "KEFU_LLM_MODEL": "qwen",
        "KEFU_LLM_FIRST_TOKEN_BUDGET_SECONDS": str(BUDGET_SECONDS),
        "KEFU_LLM_FIRST_TOKEN_TIMEOUT_SECONDS": "2",
        "KEFU_LLM_BETWEEN_TOKENS_TIMEOUT_SECONDS": "2",
    }
    with running_stack(state_dir, env) as info:
        yield info


def terminal(frames: list[dict[str, Any]]) -> dict[str, Any]:
    ends = [f for f in frames if f["type"] in ("answer.end", "error")]
    assert len(ends) == 1 and ends[0] is frames[-1], frames
    return ends[0]


def test_a_cut_stream_ends_incomplete_is_stored_so_and_is_never_served_from_the_cache(
    stack: LocalStackInfo, model_server: OpenAISSEServer
) -> None:
    question = "How long does delivery take to Macau?"
    model_server.reset(Script(tokens=TOKENS, cut_after=2))

    async def first_visitor() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with await open_visitor(stack.visitor_url()) as ws:
            frames = await ask(ws, send_message(question), timeout=BOUND_SECONDS)
            return frames, await silent_for(ws, 1.5)

    frames, later = asyncio.run(first_visitor())
    ack, end = frames[0], terminal(frames)
    deltas = [f for f in frames if f["type"] == "answer.delta"]
    assert end["type"] == "answer.end" and end["complete"] is False
    assert end["text"] == "Deliveries take " == "".join(d["text"] for d in deltas)
    assert end["messageId"] == ack["messageId"] + ".a"
    assert later == []  # nothing after the terminal frame (no second end, no error)
    with stack.admin() as admin:
        transcript = admin.get(f"/v1/tenants/{stack.tenant_id}/conversations/{ack['conversationId']}/messages").json()
    [answer] = [m for m in transcript["messages"] if m["messageId"] == end["messageId"]]
    assert answer["complete"] is False and answer["text"] == "Deliveries take "

    # The server is back: another visitor asks the same question and gets a fresh, whole answer.
    model_server.reset(Script(tokens=TOKENS))

    async def second_visitor() -> list[dict[str, Any]]:
        async with await open_visitor(stack.visitor_url()) as ws:
            return await ask(ws, send_message(question), timeout=BOUND_SECONDS)

    second = terminal(asyncio.run(second_visitor()))
    assert second["complete"] is True and second["text"] == "".join(TOKENS)
    assert len(model_server.requests) == 1  # the model was asked: the cut text was not cached


@pytest.mark.parametrize(
    "down",
    [
        pytest.param(Script(tokens=TOKENS, hang_before_headers=120), id="accepts-and-never-answers"),
        pytest.param(Script(tokens=TOKENS, hang_before_first=120), id="stuck-before-the-first-token"),
        pytest.param(Script(tokens=TOKENS, status=503), id="503"),
    ],
)
def test_a_model_that_is_down_gets_model_unavailable_in_time_and_the_next_message_is_answered_at_once(
    stack: LocalStackInfo, model_server: OpenAISSEServer, down: Script
) -> None:
    model_server.reset(down)

    async def scenario() -> tuple[list[dict[str, Any]], float, list[dict[str, Any]], float]:
        async with await open_visitor(stack.visitor_url()) as ws:
            started = time.monotonic()
            failed = await ask(ws, send_message("Where is my parcel?"), timeout=BOUND_SECONDS)
            failed_after = time.monotonic() - started
            model_server.reset(Script(tokens=TOKENS))  # the model server is back
            started = time.monotonic()
            answered = await ask(ws, send_message("How long does delivery take?"), timeout=BOUND_SECONDS)
            return failed, failed_after, answered, time.monotonic() - started

    failed, failed_after, answered, answered_after = asyncio.run(scenario())
    ack, error = failed[0], terminal(failed)
    assert [f["type"] for f in failed] == ["ack", "error"]  # never a half answer, never silence
    assert error["code"] == "model_unavailable" and error["retryable"] is True
    assert error["questionId"] == ack["messageId"] and error["messageId"] == ack["messageId"] + ".a"
    assert error["conversationId"] == ack["conversationId"]
    assert failed_after < BOUND_SECONDS
    # Same conversation (same FIFO group): not held behind the failed job.
    end = terminal(answered)
    assert end["type"] == "answer.end" and end["complete"] is True and end["text"] == "".join(TOKENS)
    assert answered_after < BOUND_SECONDS
    print(f"model down: error after {failed_after:.1f} s; next answer after {answered_after:.1f} s")


def test_the_local_queue_has_a_dead_letter_queue_that_the_admin_api_and_cli_reach(stack: LocalStackInfo) -> None:
    # Model faults above were settled by the function: nothing waits for redelivery or sits dead.
    with stack.admin() as admin:
        response = admin.get("/v1/dead-letters")
    assert response.status_code == 200 and response.json() == {"count": 0, "jobs": []}
    command = [sys.executable, "-m", "shared.cli", "--admin-url", stack.admin_url, "--admin-key", stack.admin_key]
    listed = subprocess.run([*command, "dead-letters"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0 and "0 job(s) in the dead-letter queue" in listed.stdout
