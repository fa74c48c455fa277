"""The streaming benchmark's harness (not product code): the fixture model server and the stack as
processes, one visitor's question timed frame by frame, and a module's import time in a fresh process.
Shared with the fairness and cost benchmarks."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection

ROOT = Path(__file__).resolve().parents[2]
QUESTIONS = [
    "How long does delivery take?",
    "How do I return an item?",
    "退款多久到账？",
    "Can I change my delivery address?",
    "How do I reset my password?",
]
HANDLERS = ("connect", "message", "retrieve", "generate", "admin")


# --- the processes ---


class Fixture:
    def __init__(self) -> None:
        self.process: subprocess.Popen[str] | None = None
        self.port = 0
        self.seen: dict[str | None, int] = {}

    def __enter__(self) -> Fixture:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.bench._fixture"],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"the fixture did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def script(self, tokens: int, tokens_per_second: float) -> None:
        httpx.post(f"http://127.0.0.1:{self.port}/_script", json={"tokens": tokens, "delay": 1 / tokens_per_second})

    def stats(self) -> dict[str, dict[str, float]]:
        """The requests since the last call, by marker (and remembered for ``requests_for``)."""
        records = httpx.get(f"http://127.0.0.1:{self.port}/_stats").json()
        for record in records:
            self.seen[record["marker"]] = self.seen.get(record["marker"], 0) + 1
        return {r["marker"]: r for r in records if r["marker"] and r["first_token_at"] is not None}

    def requests_for(self, marker: str) -> int:
        self.stats()
        return self.seen.get(marker, 0)

    def __exit__(self, *exc: object) -> None:
        _stop(self.process)


class Stack:
    def __init__(
        self,
        llm_base_url: str,
        state_dir: Path,
        *,
        max_concurrency: int = 64,
        env: dict[str, str] | None = None,
        module: str = "local.bench._stack",
    ) -> None:
        self.llm_base_url = llm_base_url
        self.module = module
        self.state_dir = state_dir
        self.max_concurrency = max_concurrency
        self.extra_env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}

    def __enter__(self) -> Stack:
        env = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
        env |= {"KEFU_LLM_PROVIDER": "openai", "KEFU_LLM_BASE_URL": self.llm_base_url, "KEFU_LLM_MODEL": "bench"}
        # The fixture model listens on loopback; the benchmark measures the engine, not the visitor
        # limits (a closed loop asks faster than any person), so those are off.
        env |= {"KEFU_MODEL_ENDPOINT_ALLOW_LOOPBACK": "true", "KEFU_RATE_VISITOR_MESSAGES_PER_MINUTE": "0"}
        env |= {"KEFU_RATE_CONNECTION_FRAMES_PER_10S": "0", "KEFU_RATE_TENANT_MESSAGES_PER_MINUTE": "0"}
        env |= {"KEFU_RATE_VISITOR_CHARACTERS_PER_MINUTE": "0", "KEFU_RATE_ADDRESS_MESSAGES_PER_MINUTE": "0"}
        env |= {"KEFU_RATE_ADDRESS_CONNECTIONS_PER_MINUTE": "0"}
        env |= self.extra_env
        self.log = (self.state_dir / "stack.log").open("wb")
        command = [sys.executable, "-m", self.module, "--state-dir", str(self.state_dir)]
        if self.module == "local.bench._stack":
            command += ["--max-concurrency", str(self.max_concurrency)]
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        target = self.state_dir / "local.json"
        deadline = time.monotonic() + 180
        while not target.exists():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((self.state_dir / "stack.log").read_text(errors="replace")[-3000:])
            time.sleep(0.2)
        self.info = json.loads(target.read_text())
        return self

    def visitor_url(self, tenant_id: str | None = None, widget_key: str | None = None) -> str:
        query = httpx.QueryParams(
            tenant=tenant_id or self.info["tenant_id"],
            key=widget_key or self.info["widget_key"],
            visitor="bench-" + uuid.uuid4().hex[:12],
        )
        return f"{self.info['ws_url']}?{query}"

    def cpu_seconds(self) -> float:
        """User + system CPU of the stack process and its children (moto's server, redis-server)."""
        assert self.process is not None
        return sum(_cpu_seconds(pid) for pid in [self.process.pid, *_children(self.process.pid)])

    def __exit__(self, *exc: object) -> None:
        _stop(self.process)
        self.log.close()


def _stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (state, ppid, ...)."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def _cpu_seconds(pid: int) -> float:
    try:
        fields = _stat(pid)
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int(_stat(int(entry.name))[1]) == parent:
                    found.append(int(entry.name))
            except (FileNotFoundError, IndexError, ValueError):
                continue
    return found


def _stop(process: subprocess.Popen[Any] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- one question ---


@dataclass
class Sample:
    marker: str
    sent: float
    ack: float = 0.0
    deltas: list[float] = field(default_factory=list)
    end: float = 0.0
    error: str | None = None
    conversation_id: str | None = None
    # From the fixture:
    received: float = 0.0
    first_token: float = 0.0

    @property
    def added_ms(self) -> float:
        return ((self.deltas[0] - self.sent) - (self.first_token - self.received)) * 1000

    @property
    def posts_per_second(self) -> float:
        span = self.deltas[-1] - self.deltas[0]
        return (len(self.deltas) - 1) / span if span > 0 else 0.0

    @property
    def busiest_second(self) -> int:
        return max(sum(1 for t in self.deltas if start <= t < start + 1) for start in self.deltas)


async def ask(
    ws: ClientConnection, question: str, marker: str | None = None, conversation_id: str | None = None
) -> Sample:
    """One question; like the widget, it names its conversation once the first ack gave it."""
    marker = marker or uuid.uuid4().hex[:16]
    frame = {"action": "sendMessage", "clientMessageId": uuid.uuid4().hex, "text": f"{question} [bench {marker}]"}
    if conversation_id:
        frame["conversationId"] = conversation_id
    sample = Sample(marker=marker, sent=time.monotonic())
    await ws.send(json.dumps(frame))
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), 60))
        now = time.monotonic()
        kind = message.get("type")
        if kind == "ack":
            sample.ack = now
            sample.conversation_id = message.get("conversationId")
        elif kind == "answer.delta":
            sample.deltas.append(now)
        elif kind == "answer.end":
            sample.end = now
            return sample
        elif kind == "error":
            sample.error = message.get("code")
            return sample


def join_fixture(samples: list[Sample], fixture: Fixture) -> list[Sample]:
    """Fill in the fixture's timestamps; keep the samples that reached the model and streamed."""
    stats = fixture.stats()
    joined = []
    for sample in samples:
        record = stats.get(sample.marker)
        if record is None or not sample.deltas or sample.error:
            continue
        sample.received, sample.first_token = record["received_at"], record["first_token_at"]
        joined.append(sample)
    return joined


# --- a module's import time ---


def timed_import(statement: str, env: dict[str, str] | None = None) -> float:
    code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
    base = {"PATH": os.environ.get("PATH", "/usr/bin"), "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**base, **(env or {})}, capture_output=True, text=True, check=True
    )
    return float(result.stdout.strip().splitlines()[-1]) * 1000
