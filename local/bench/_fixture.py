"""Benchmark fixture (not product code): the OpenAI-compatible test server of tests/support, in its own
process, streaming tokens at a fixed rate and reporting when each request arrived and when its first
token left (``time.monotonic()``, the same clock in every process on this machine).

    python -m local.bench._fixture      # prints "READY <port>"

``POST /_script`` {"tokens": n, "delay": seconds} sets what the next answers stream (each token,
the first included, after ``delay``); ``GET /_stats`` returns and clears the records.
"""

from __future__ import annotations

import json
import re
import signal
import sys
import threading
from typing import Any

from tests.support.openai_sse_server import OpenAISSEServer, Receive, Scope, Script, Send, _respond_json

_MARKER = re.compile(r"\[bench ([0-9a-f]{8,32})\]")


class BenchFixture(OpenAISSEServer):
    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/_stats":
            records = [self._record(request) for request in self.requests]
            self.requests.clear()
            await _respond_json(send, 200, records)
            return
        if scope["type"] == "http" and scope["path"] == "/_script":
            raw = b""
            while True:
                message = await receive()
                raw += message.get("body", b"")
                if not message.get("more_body"):
                    break
            wanted = json.loads(raw)
            tokens = [f" w{i}" for i in range(int(wanted["tokens"]))]
            self.script = Script(tokens=tokens, delay=float(wanted["delay"]))
            await _respond_json(send, 200, {"ok": True})
            return
        await super()._app(scope, receive, send)

    @staticmethod
    def _record(request: Any) -> dict[str, Any]:
        body = request.body if isinstance(request.body, dict) else {}
        users = [m.get("content", "") for m in body.get("messages", []) if m.get("role") == "user"]
        found = _MARKER.search(users[-1]) if users else None
        return {
            "marker": found.group(1) if found else None,
            "received_at": request.received_at,
            "first_token_at": request.first_token_at,
        }


def main() -> None:
    with BenchFixture(Script(tokens=[" w"] * 10, delay=0.005)) as server:
        print(f"READY {server.port}", flush=True)
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        stop.wait()
    sys.exit(0)


if __name__ == "__main__":
    main()
