"""A fault-injecting OpenAI-compatible model server, in a process of its own so it can really be killed.

It is ``OpenAISSEServer`` (real HTTP/1.1, chunked server-sent events, ``[DONE]``) plus a control API
a test harness drives while visitors chat:

    PUT /_fault {"delay": 2.0}                  one token every 2 s (slow model)
    PUT /_fault {"delay": 3600}                 accepts, starts the response, never sends a token
    PUT /_fault {"status": 503}                 answers every request with 503 (also 429, 500, ...)
    PUT /_fault {}                              healthy again (``TOKENS``, quickly)
    GET /_fault                                 {"requests", "streaming", "tokensSent", "completed"}

Killing the process (``FaultModelProcess.kill``: SIGKILL) cuts every stream without ``[DONE]``;
while it is stopped, connections are refused.

    python -m tests.support.fault_model_server --port 8001
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from tests.support.openai_sse_server import OpenAISSEServer, Receive, Scope, Script, Send
from tests.support.recording_server import read_request

ROOT = Path(__file__).resolve().parents[2]

# A complete answer is exactly these tokens joined: anything shorter served as complete is a cut answer.
TOKENS = ["Deliveries ", "take ", "2 to 4 ", "working ", "days ", "[1]."]
FULL_TEXT = "".join(TOKENS)
HEALTHY_DELAY = 0.05


def script_for(fault: dict[str, Any]) -> Script:
    """The ``Script`` of a control request (no field: healthy)."""
    status = int(fault.get("status", 200))
    error = {"error": {"message": f"injected {status}", "type": "server_error", "code": status}}
    return Script(tokens=list(TOKENS), delay=float(fault.get("delay", HEALTHY_DELAY)), status=status, error_body=error)


class FaultModelServer(OpenAISSEServer):
    name = "fault-injecting model server"

    def __init__(self, port: int) -> None:
        super().__init__(script_for({}), port=port, model="fault-model")
        self.streaming = 0
        self.fault: dict[str, Any] = {}

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_fault":
            await self._control(scope, receive, send)
            return
        self.streaming += 1
        try:
            await super()._app(scope, receive, send)
        finally:
            self.streaming -= 1

    async def _control(self, scope: Scope, receive: Receive, send: Send) -> None:
        _, body = await read_request(receive, scope)
        if scope["method"] == "PUT":
            self.fault = dict(body or {})
            self.script = script_for(self.fault)
        state = {
            "fault": self.fault,
            "requests": len(self.requests),
            "streaming": self.streaming,
            "tokensSent": self.tokens_sent,
        }
        raw = json.dumps(state).encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": raw, "more_body": False})


class FaultModelProcess:
    """Starts, controls, kills and restarts ``FaultModelServer`` in a child process, on one port."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._process: subprocess.Popen[str] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> FaultModelProcess:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.fault_model_server", "--port", str(self.port)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline()  # printed once it listens
        if "listening" not in line:
            self.kill()
            raise RuntimeError(f"the fault model server did not start: {line!r}")
        return self

    def kill(self) -> None:
        """SIGKILL: streams end mid-answer without [DONE]; then connections are refused."""
        if self._process is not None and self._process.poll() is None:
            os.kill(self._process.pid, signal.SIGKILL)
            self._process.wait(timeout=10)
        if self._process is not None and self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def set(self, **fault: Any) -> dict[str, Any]:
        return dict(httpx.put(f"http://127.0.0.1:{self.port}/_fault", json=fault, timeout=10).json())

    def stats(self) -> dict[str, Any]:
        return dict(httpx.get(f"http://127.0.0.1:{self.port}/_fault", timeout=10).json())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with FaultModelServer(args.port) as server:
        print(f"listening on {server.base_url}", flush=True)  # noqa: T201 - the parent waits for it
        threading.Event().wait()


if __name__ == "__main__":
    main()
