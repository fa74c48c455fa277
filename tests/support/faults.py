"""The fault-injection suite: many visitors chat through the real local stack while parts of it fail.

The stack is ``python -m local.run`` in a child process (real handlers behind the API Gateway emulator,
moto's server, a real redis-server) with ``KEFU_LLM_PROVIDER=openai`` pointing at
``tests/support/fault_model_server.py``, itself a child process. Visitors are real WebSocket clients
that behave like the widget: a frame that got no ``ack`` (an ``Internal server error`` frame, an
``error`` with code ``retry``, a dropped connection, silence) is sent again unchanged, with the same
``clientMessageId``.

For every visitor message the suite checks, by ``check_outcomes``:
- exactly one terminal outcome: a complete answer (``answer.end``), a marked-incomplete answer
  (``answer.end`` with ``"complete": false``) or an ``error`` frame / ``notice`` naming the message,
  within ``bound_seconds`` of the first send;
- no second terminal frame for it (no duplicate answer), ever;
- a complete answer is the model's whole text (a cut answer is never passed off as complete, and
  never served from the answer cache: cut questions are asked again afterwards);
- the admin transcript holds the message once, and its answer at most once (the text the visitor
  saw, when the visitor saw a complete answer).

``python -m tests.support.faults --visitors 12 --messages 3 --report docs/reliability.md`` (``make faults``)
runs the long version and writes the report; ``tests/e2e/test_faults.py`` runs a short one.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import httpx
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from local.run import GENERATE_VISIBILITY_SECONDS
from local.services import free_port, use_dummy_aws_credentials
from tests.e2e.conftest import start_local_run, stop, wait_for_local_json
from tests.support.fault_model_server import FULL_TEXT, FaultModelProcess

# Errors that mean "nothing happened yet: send the same frame again" (not outcomes).
RESEND_CODES = frozenset({"retry", "rate_limited"})
# A message without an ack after this long is sent again (the widget's resend).
ACK_WAIT_SECONDS = 8.0
RESEND_PAUSE_SECONDS = 1.0
QUESTIONS = [
    "How long does delivery take?",
    "When will my parcel arrive?",
    "How many days is shipping?",
    "送货需要几天？",
]


@dataclass
class Sent:
    """One visitor message and everything the visitor saw about it."""

    visitor: str
    client_message_id: str
    text: str
    first_sent: float
    sends: int = 0
    message_id: str | None = None
    conversation_id: str | None = None
    terminals: list[tuple[str, dict[str, Any], float]] = field(default_factory=list)
    # The types of every frame that named this message (for the report of a problem).
    seen: list[str] = field(default_factory=list)
    # Sent (again) and not acked since: a failure frame or silence means "send it again".
    awaiting_ack: bool = False

    @property
    def answer_id(self) -> str | None:
        return f"{self.message_id}.a" if self.message_id else None

    def names(self, frame: dict[str, Any]) -> bool:
        """Whether ``frame`` is about this message (by its client id, its id or its answer's id)."""
        ids = {frame.get("clientMessageId"), frame.get("messageId")}
        return bool(ids & {self.client_message_id, self.message_id, self.answer_id} - {None})

    def terminal_kind(self, frame: dict[str, Any]) -> str | None:
        kind = frame.get("type")
        if kind == "answer.end" and frame.get("messageId") == self.answer_id:
            return "incomplete" if frame.get("complete") is False else "complete"
        if kind == "error" and frame.get("code") not in RESEND_CODES and self.names(frame):
            return f"error:{frame.get('code')}"
        if kind == "notice" and self.names(frame):
            return f"notice:{frame.get('code')}"
        return None


@dataclass
class FaultStack:
    """``python -m local.run`` with the fault model server as its deployment model."""

    state_dir: Path
    model: FaultModelProcess = field(default_factory=lambda: FaultModelProcess(free_port()))
    info: dict[str, Any] = field(default_factory=dict)
    _process: subprocess.Popen[bytes] | None = None
    _log: Any = None
    _redis_restarts: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self) -> FaultStack:
        use_dummy_aws_credentials()  # the harness reads the queue through moto's SQS API too
        self.model.start()
        env = {
            "KEFU_LLM_PROVIDER": "openai",
            "KEFU_LLM_BASE_URL": self.model.base_url,
            "KEFU_LLM_MODEL": "fault-model",
            # A failing model is skipped only briefly, so that each fault meets the model afresh.
            "KEFU_LLM_BREAKER_COOLDOWN_SECONDS": "2",
            # A silent model is given up on after 5 s (the default is 15 s): a shorter run, same rules.
            "KEFU_LLM_FIRST_TOKEN_TIMEOUT_SECONDS": "5",
        }
        self._process, self._log = start_local_run(self.state_dir, env, args=("--fresh",))
        try:
            self.info = wait_for_local_json(self._process, self.state_dir)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self._process is not None:
            stop(self._process)
            self._log.close()
        for process in self._redis_restarts:
            process.kill()
            process.wait()
        self.model.kill()

    # --- what the faults need ---

    def admin(self) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.info['admin_key']}"}
        return httpx.Client(base_url=self.info["admin_url"], headers=headers, timeout=60)

    def visitor_url(self, visitor: str) -> str:
        query = httpx.QueryParams(tenant=self.info["tenant_id"], key=self.info["widget_key"], visitor=visitor)
        return f"{self.info['ws_url']}?{query}"

    def set_visibility_timeout(self, seconds: int) -> None:
        """The generate queue's visibility timeout: how long a crashed job waits for redelivery."""
        sqs = boto3.client("sqs", endpoint_url=self.info["sqs_endpoint"], region_name="us-east-1")
        sqs.set_queue_attributes(QueueUrl=self.info["queue_url"], Attributes={"VisibilityTimeout": str(seconds)})

    def arm_crash(self, after_posts: int, count: int) -> None:
        plan = {"crash": {"function": "kefu-generate", "afterPosts": after_posts, "count": count}}
        with self.admin() as admin:
            admin.put("/_emulator/faults", json=plan).raise_for_status()

    def crash_report(self) -> dict[str, Any]:
        with self.admin() as admin:
            return dict(admin.get("/_emulator/faults").json()["crash"] or {})

    def disarm_crash(self) -> None:
        with self.admin() as admin:
            admin.delete("/_emulator/faults").raise_for_status()

    def moto_pid(self) -> int:
        assert self._process is not None
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = (stat.parent / "cmdline").read_bytes()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == self._process.pid and b"local.services\x00moto" in cmdline:
                return int(stat.parent.name)
        raise LookupError("no moto process under the runner")

    def restart_redis(self, down_seconds: float) -> None:
        """redis-server exits (SHUTDOWN NOSAVE), stays down, then a new one starts on the same port."""
        url = self.info["redis_url"]
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        try:
            redis.Redis.from_url(url).shutdown(nosave=True)
        except redis.ConnectionError:
            pass  # it is gone, as asked
        time.sleep(down_seconds)
        args = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        self._redis_restarts.append(process)

    def transcript(self, conversation_id: str) -> list[dict[str, Any]]:
        with self.admin() as admin:
            response = admin.get(f"/v1/tenants/{self.info['tenant_id']}/conversations/{conversation_id}/messages")
        response.raise_for_status()
        return list(response.json()["messages"])


async def _receive(ws: ClientConnection, timeout: float) -> dict[str, Any] | None:
    try:
        raw = await asyncio.wait_for(ws.recv(), timeout)
    except TimeoutError:
        return None
    frame = json.loads(raw)
    return frame if isinstance(frame, dict) else None


class Visitor:
    """One visitor: asks its questions one after another, resending like the widget does."""

    def __init__(self, stack: FaultStack, name: str, bound_seconds: float) -> None:
        self.stack = stack
        self.name = name
        self.bound = bound_seconds
        self.sent: list[Sent] = []
        self.frames: list[tuple[float, dict[str, Any]]] = []
        self._ws: ClientConnection | None = None

    async def _connection(self) -> ClientConnection:
        attempts = 0
        while self._ws is None:
            try:
                self._ws = await connect(self.stack.visitor_url(self.name), open_timeout=10)
            except (OSError, InvalidStatus, TimeoutError):
                attempts += 1
                if attempts * RESEND_PAUSE_SECONDS > self.bound:
                    raise
                await asyncio.sleep(RESEND_PAUSE_SECONDS)  # e.g. $connect failing while DynamoDB is away
        return self._ws

    async def _send(self, message: Sent, conversation_id: str | None) -> None:
        frame: dict[str, Any] = {"action": "sendMessage", "clientMessageId": message.client_message_id}
        frame["text"] = message.text
        if conversation_id:
            frame["conversationId"] = conversation_id
        while True:
            ws = await self._connection()
            try:
                await ws.send(json.dumps(frame))
                message.sends += 1
                message.awaiting_ack = True
                return
            except ConnectionClosed:
                self._ws = None

    def _note(self, frame: dict[str, Any], now: float) -> None:
        self.frames.append((now, frame))
        if frame.get("type") == "error" and not (frame.get("clientMessageId") or frame.get("messageId")) and self.sent:
            # An error that names no message cannot tell the visitor which question failed.
            self.sent[-1].seen.append(f"error without a message id: {frame.get('code')}")
        for message in self.sent:
            if frame.get("type") == "ack" and frame.get("clientMessageId") == message.client_message_id:
                message.message_id = frame["messageId"]
                message.conversation_id = frame["conversationId"]
                message.awaiting_ack = False
            if message.names(frame):
                message.seen.append(str(frame.get("type") or frame.get("message")))
            kind = message.terminal_kind(frame)
            if kind is not None:
                message.terminals.append((kind, frame, now - message.first_sent))

    async def ask(self, text: str) -> Sent:
        conversation = next((m.conversation_id for m in reversed(self.sent) if m.conversation_id), None)
        message = Sent(self.name, "c-" + uuid.uuid4().hex, text, time.monotonic())
        self.sent.append(message)
        await self._send(message, conversation)
        last_send = time.monotonic()
        while not message.terminals and time.monotonic() - message.first_sent < self.bound:
            ws = await self._connection()
            try:
                frame = await _receive(ws, 0.5)
            except ConnectionClosed:
                self._ws = None
                frame = None
                if message.awaiting_ack:
                    await self._send(message, conversation)  # after reconnecting, as the widget does
                    last_send = time.monotonic()
                continue
            now = time.monotonic()
            if frame is not None:
                self._note(frame, now)
                resend_code = frame.get("type") == "error" and frame.get("code") in RESEND_CODES
                if resend_code and message.names(frame):
                    message.awaiting_ack = True  # not queued (or not taken): the protocol says send it again
                if message.awaiting_ack and (frame.get("message") == "Internal server error" or resend_code):
                    wait_ms = frame.get("retryAfterMs")
                    pause = max(RESEND_PAUSE_SECONDS, wait_ms / 1000) if isinstance(wait_ms, int) else None
                    await asyncio.sleep(pause or RESEND_PAUSE_SECONDS)
                    await self._send(message, conversation)
                    last_send = time.monotonic()
            elif message.awaiting_ack and now - last_send > ACK_WAIT_SECONDS:
                await self._send(message, conversation)
                last_send = now
        return message

    async def listen(self, seconds: float) -> None:
        """Keep reading (late or duplicate frames are recorded) for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and self._ws is not None:
            try:
                frame = await _receive(self._ws, max(0.05, deadline - time.monotonic()))
            except ConnectionClosed:
                return
            if frame is not None:
                self._note(frame, time.monotonic())

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


@dataclass
class FaultResult:
    name: str
    sent: list[Sent]
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def outcomes(self) -> Counter[str]:
        return Counter(m.terminals[0][0] if m.terminals else "none" for m in self.sent)

    @property
    def worst_seconds(self) -> float:
        return max((m.terminals[0][2] for m in self.sent if m.terminals), default=0.0)

    @property
    def duplicates(self) -> int:
        return sum(max(0, len(m.terminals) - 1) for m in self.sent)

    @property
    def losses(self) -> int:
        return sum(1 for m in self.sent if not m.terminals)


Fault = Callable[[FaultStack], Coroutine[Any, Any, None]]


async def run_fault(
    stack: FaultStack,
    name: str,
    fault: Fault,
    *,
    visitors: int,
    messages: int,
    bound_seconds: float,
    grace_seconds: float = 3.0,
) -> FaultResult:
    """``visitors`` chat at once (``messages`` each) while ``fault`` runs; then every check."""
    crowd = [Visitor(stack, f"v-{i}-{uuid.uuid4().hex[:12]}", bound_seconds) for i in range(visitors)]

    async def chat(visitor: Visitor, index: int) -> None:
        for turn in range(messages):
            question = QUESTIONS[(index + turn) % len(QUESTIONS)]
            # Unique text: no answer comes from the cache, so each message meets the fault.
            await visitor.ask(f"{question} ({visitor.name[-6:]} #{turn})")

    fault_task = asyncio.create_task(fault(stack))
    await asyncio.gather(*(chat(v, i) for i, v in enumerate(crowd)))
    await fault_task
    await asyncio.gather(*(v.listen(grace_seconds) for v in crowd))
    await asyncio.gather(*(v.close() for v in crowd))
    result = FaultResult(name, [m for v in crowd for m in v.sent])
    await asyncio.to_thread(check_outcomes, stack, result, bound_seconds)
    return result


def check_outcomes(stack: FaultStack, result: FaultResult, bound_seconds: float) -> None:
    """Every rule of the module docstring, as problems (empty: all held)."""
    problems = result.problems
    conversations: dict[str, list[Sent]] = {}
    for message in result.sent:
        label = f"{result.name}: {message.text!r}"
        if not message.terminals:
            acked = bool(message.message_id)
            seen = message.seen[:3] + ["…"] + message.seen[-3:] if len(message.seen) > 6 else message.seen
            problems.append(f"{label}: no terminal outcome within {bound_seconds} s (acked: {acked}; saw {seen})")
            continue
        if len(message.terminals) > 1:
            problems.append(f"{label}: {len(message.terminals)} terminal frames {[t[0] for t in message.terminals]}")
        kind, frame, _ = message.terminals[0]
        if kind == "complete" and frame.get("text") != FULL_TEXT:
            problems.append(f"{label}: a complete answer that is not the model's whole text: {frame.get('text')!r}")
        if message.conversation_id:
            conversations.setdefault(message.conversation_id, []).append(message)
        else:
            problems.append(f"{label}: never acked")
    for conversation_id, messages in conversations.items():
        stored = stack.transcript(conversation_id)
        for message in messages:
            label = f"{result.name}: {message.text!r}"
            copies = [m for m in stored if m["role"] == "visitor" and m["text"] == message.text]
            if len(copies) != 1:
                problems.append(f"{label}: stored {len(copies)} times in the transcript")
            answers = [m for m in stored if m["messageId"] == message.answer_id]
            if len(answers) > 1:
                problems.append(f"{label}: its answer stored {len(answers)} times")
            kind, frame, _ = message.terminals[0] if message.terminals else ("none", {}, 0.0)
            if kind == "complete" and [a["text"] for a in answers] != [frame.get("text")]:
                problems.append(f"{label}: the complete answer is not stored as sent ({len(answers)} stored)")


async def ask_again_healthy(stack: FaultStack, result: FaultResult, bound_seconds: float) -> FaultResult:
    """Questions that got a cut answer, asked again once the model is healthy, by new visitors: each
    must get the whole answer (a cut answer in the answer cache would come back here)."""
    cut = [m for m in result.sent if not m.terminals or m.terminals[0][0] != "complete"]
    again = FaultResult(f"{result.name} (asked again)", [])
    for index, message in enumerate(cut[:8]):
        visitor = Visitor(stack, f"v-again-{index}-{uuid.uuid4().hex[:12]}", bound_seconds)
        again.sent.append(await visitor.ask(message.text))
        await visitor.close()
    await asyncio.to_thread(check_outcomes, stack, again, bound_seconds)
    for message in again.sent:
        if not message.terminals or message.terminals[0][0] != "complete":
            again.problems.append(f"{again.name}: {message.text!r} did not get a complete answer")
    return again


# --- the faults ---


async def _until(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await asyncio.to_thread(condition):
            return True
        await asyncio.sleep(0.1)
    return False


def model_killed_mid_stream(stack: FaultStack) -> Fault:
    stack.model.set(delay=0.6)  # streams last ~4 s: many are mid-answer at the kill

    async def fault(stack: FaultStack) -> None:
        await _until(lambda: stack.model.stats()["tokensSent"] >= 3, 30)
        await asyncio.sleep(0.5)
        stack.model.kill()
        await asyncio.sleep(1.0)
        stack.model.start()  # healthy again, same port

    return fault


def model_refusing(stack: FaultStack) -> Fault:
    stack.model.kill()

    async def fault(stack: FaultStack) -> None:
        await asyncio.sleep(4.0)
        stack.model.start()

    return fault


def model_status(status: int) -> Callable[[FaultStack], Fault]:
    def prepare(stack: FaultStack) -> Fault:
        stack.model.set(status=status)

        async def fault(stack: FaultStack) -> None:
            await asyncio.sleep(4.0)
            stack.model.set()

        return fault

    return prepare


def model_hangs(stack: FaultStack) -> Fault:
    stack.model.set(delay=3600)

    async def fault(stack: FaultStack) -> None:
        await asyncio.sleep(3.0)
        stack.model.set()  # requests already hanging keep hanging

    return fault


def model_slow(stack: FaultStack) -> Fault:
    stack.model.set(delay=2.0)  # one token every 2 s

    async def fault(stack: FaultStack) -> None:
        await asyncio.sleep(6.0)
        stack.model.set()

    return fault


def redis_restarted(stack: FaultStack) -> Fault:
    stack.model.set(delay=0.2)

    async def fault(stack: FaultStack) -> None:
        await asyncio.sleep(1.0)
        await asyncio.to_thread(stack.restart_redis, 2.0)

    return fault


def generate_crashes(visitors: int) -> Callable[[FaultStack], Fault]:
    def prepare(stack: FaultStack) -> Fault:
        stack.model.set(delay=0.2)
        # A crashed job comes back after 20 s (a visibility timeout still longer than any job here takes:
        # shorter, a slow job would be delivered twice while it runs)
        stack.set_visibility_timeout(20)
        stack.arm_crash(after_posts=2, count=visitors)

        async def fault(stack: FaultStack) -> None:
            await asyncio.sleep(0)

        return fault

    return prepare


def moto_restarted(stack: FaultStack) -> Fault:
    stack.model.set(delay=0.2)
    stack.set_visibility_timeout(20)

    async def fault(stack: FaultStack) -> None:
        await asyncio.sleep(1.5)
        os.kill(stack.moto_pid(), signal.SIGTERM)  # saves its state, exits; the runner starts it again

    return fault


CRASH = "generate crashes after some deltas (SQS redelivery)"
MOTO_RESTART = "moto (DynamoDB, SQS) restarted"
OPEN = (
    "**moto restarted** is still not in `make test`'s short version: now and then a job that was in flight "
    "when moto went away (DynamoDB and SQS refusing for ~3 s) gets no terminal outcome within the bound, and "
    "its conversation's later messages wait behind it; the visitor saw the `ack` (sometimes the deltas of an "
    "answer whose storing failed) and nothing more. How often, on the current code: 0 problems in 25 isolated "
    "runs of this fault (13 with 3 visitors, 12 with 8 visitors, 2 messages each, alongside other developers' "
    "test runs), and 1 failed run in 6 of the short test for this fault alone (3 visitors) while `make faults` "
    "ran at the same time; the table above is one run. Cause not found. Ruled out: moto's restored FIFO "
    "bookkeeping (a restored queue whose in-flight records no longer match its messages, holding a message "
    "group for ever). The last snapshot is taken once the requests in flight have finished, a restored job in "
    "flight comes back after its visibility timeout and then frees its group "
    "(tests/integration/test_local_services.py). Seen in the log of a failing `make faults` run: a job's first "
    "attempt streamed the answer and failed when it read the conversation to store it (DynamoDB down), as it "
    "should, leaving it to SQS; ~20 s later the only generate invocations were two fast ones (0.3-0.4 s) that "
    "succeeded, and the visitor got no frame. "
    "The generate function logs its outcome per job at INFO (`job done`, e.g. `already-answered`, "
    "`not-bot-owned`, `connection-gone`), which `make run` hides (POWERTOOLS_LOG_LEVEL=WARNING): set "
    "POWERTOOLS_LOG_LEVEL=INFO when running `make faults` to see which outcome it was. The emulator now also "
    "logs the jobs a function reports as failed (`batchItemFailures`), as it already did for failed invocations."
)
HOW = {
    "model killed mid-stream": "the model streams a token every 0.6 s; once tokens flow its process gets SIGKILL "
    "(streams end without `[DONE]`), and a new one starts on the same port 1 s later; the questions that got "
    "a cut answer are then asked again by new visitors (a cut answer in the cache would come back)",
    "model refusing connections": "the model process is stopped for the first 4 s (connection refused)",
    "model answers 429": "every model request gets HTTP 429 for 4 s",
    "model answers 500": "every model request gets HTTP 500 for 4 s",
    "model answers 503": "every model request gets HTTP 503 for 4 s",
    "model hangs before the first token": "for 3 s, model requests get a 200 and a role-only delta, then nothing, "
    "ever (the stack runs with `KEFU_LLM_FIRST_TOKEN_TIMEOUT_SECONDS=5`)",
    "model sends one token every 2 s": "for 6 s, new model requests stream one token every 2 s",
    "redis-server killed and restarted": "1 s in, redis-server gets SHUTDOWN NOSAVE; 2 s later a new, empty one "
    "starts on the same port",
    MOTO_RESTART: "1.5 s in, moto's process gets SIGTERM (it saves its state and exits); the "
    "runner starts it again from that state (DynamoDB and SQS refuse connections meanwhile)",
    CRASH: "the emulator crashes each visitor's first generate invocation at its 2nd @connections post "
    "(`PUT /_emulator/faults`); the job comes back after the queue's visibility timeout (20 s here)",
}
FAULTS: dict[str, Callable[[FaultStack], Fault]] = {
    "model killed mid-stream": model_killed_mid_stream,
    "model refusing connections": model_refusing,
    "model answers 429": model_status(429),
    "model answers 500": model_status(500),
    "model answers 503": model_status(503),
    "model hangs before the first token": model_hangs,
    "model sends one token every 2 s": model_slow,
    "redis-server killed and restarted": redis_restarted,
    MOTO_RESTART: moto_restarted,
}


async def run_suite(
    stack: FaultStack, *, visitors: int, messages: int, bound_seconds: float, only: list[str] | None = None
) -> list[FaultResult]:
    faults = dict(FAULTS)
    faults[CRASH] = generate_crashes(visitors)
    results: list[FaultResult] = []
    for name, prepare in faults.items():
        if only is not None and name not in only:
            continue
        fault = await asyncio.to_thread(prepare, stack)
        try:
            result = await run_fault(
                stack, name, fault, visitors=visitors, messages=messages, bound_seconds=bound_seconds
            )
            if name == CRASH:
                crashed = (await asyncio.to_thread(stack.crash_report)).get("crashed", 0)
                result.notes.append(f"{crashed} invocations crashed")
                if not crashed:
                    result.problems.append(f"{name}: the crash plan crashed nothing")
        finally:
            await asyncio.to_thread(_heal, stack)
        results.append(result)
        if name == "model killed mid-stream":
            results.append(await ask_again_healthy(stack, result, bound_seconds))
    return results


def _heal(stack: FaultStack) -> None:
    """Back to normal between faults."""
    try:
        stack.model.set()
    except httpx.HTTPError:
        stack.model.kill()
        stack.model.start()
    stack.disarm_crash()
    stack.set_visibility_timeout(GENERATE_VISIBILITY_SECONDS)


def report(results: list[FaultResult], *, visitors: int, messages: int, bound_seconds: float, seconds: float) -> str:
    cpu_lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpu_lines if "model name" in line), platform.machine())
    lines = [
        "# Reliability: the fault-injection suite",
        "",
        f"`make faults` ({visitors} concurrent visitors, {messages} messages each per fault, through the real local "
        "stack: `python -m local.run` with real handlers, moto's server, redis-server, real WebSocket clients, and "
        "`tests/support/fault_model_server.py` as the OpenAI-compatible model, a process of its own). "
        f"Every visitor message must reach exactly one terminal outcome within {bound_seconds:.0f} s, never twice, "
        "stored once; a complete answer must be the model's whole text. "
        "`make test` runs a short version (`tests/e2e/test_faults.py`).",
        "",
        f"Machine: {os.cpu_count()} cores, {cpu}, Python {platform.python_version()}, {platform.system()}. "
        f"Date: {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. Whole run: {seconds:.0f} s.",
        "",
        "| fault | messages | complete | incomplete | error / notice | worst time to terminal (s) | duplicates | "
        "losses | problems |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for result in results:
        outcomes = result.outcomes
        errors = ", ".join(f"{kind} {n}" for kind, n in sorted(outcomes.items()) if ":" in kind) or "0"
        note = "; ".join(result.notes)
        name = f"{result.name} ({note})" if note else result.name
        lines.append(
            f"| {name} | {len(result.sent)} | {outcomes.get('complete', 0)} | "
            f"{outcomes.get('incomplete', 0)} | {errors} | {result.worst_seconds:.1f} | {result.duplicates} | "
            f"{result.losses} | {len(result.problems)} |"
        )
    lines += ["", "## The faults", ""]
    lines += [f"- **{name}**: {text}." for name, text in HOW.items()]
    lines += ["", "## Open", "", OPEN]
    problems = [p for r in results for p in r.problems]
    lines += ["", "## Problems", ""]
    lines += [f"- {p}" for p in problems[:60]] or ["None."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.support.faults", description=__doc__)
    parser.add_argument("--visitors", type=int, default=12)
    parser.add_argument("--messages", type=int, default=3)
    parser.add_argument("--bound", type=float, default=90.0, help="seconds a message may wait for its outcome")
    parser.add_argument("--only", nargs="*", help="run only these faults (names as in the report)")
    parser.add_argument("--report", type=Path, default=None, help="write the markdown table here")
    parser.add_argument("--state-dir", type=Path, default=Path(".kefu-faults"))
    args = parser.parse_args()
    args.state_dir.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # a kill stops the stack it started
    started = time.monotonic()
    stack = FaultStack(args.state_dir).start()
    try:
        results = asyncio.run(
            run_suite(stack, visitors=args.visitors, messages=args.messages, bound_seconds=args.bound, only=args.only)
        )
    finally:
        stack.stop()
    text = report(
        results,
        visitors=args.visitors,
        messages=args.messages,
        bound_seconds=args.bound,
        seconds=time.monotonic() - started,
    )
    if args.report:
        args.report.write_text(text, encoding="utf-8")
    print(text)  # noqa: T201 - a command-line report


if __name__ == "__main__":
    main()
