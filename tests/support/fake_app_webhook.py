"""FakeAppBackend: a company's own backend receiving kefu's webhook deliveries on loopback (uvicorn,
real HTTP). It checks each delivery's signature with the shared secret, records what it accepted, and
can be told to fail the next N deliveries (HTTP 500 or a given status) to exercise the retries."""

from __future__ import annotations

import json
import time
from typing import Any

from shared.channels.base import SignatureInvalid
from shared.channels.webhook import check
from tests.support.recording_server import Receive, RecordingServer, Scope, Send


class FakeAppBackend(RecordingServer[None, dict[str, Any]]):
    name = "fake app backend"

    def __init__(self, secret: str) -> None:
        super().__init__(None)
        self.secret = secret
        self.accepted: list[dict[str, Any]] = []
        self.fail_next = 0
        self.fail_status = 500
        self.bad_signatures = 0

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = b""
        while True:
            message = await receive()
            raw += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {key.decode().lower(): value.decode() for key, value in scope["headers"]}
        self.requests.append({"headers": headers, "body": raw})
        status = 200
        try:
            check(self.secret, headers, raw, time.time())
        except SignatureInvalid:
            self.bad_signatures += 1
            status = 401
        else:
            if self.fail_next > 0:
                self.fail_next -= 1
                status = self.fail_status
            else:
                self.accepted.append(json.loads(raw))
        await send({"type": "http.response.start", "status": status, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"ok" if status == 200 else b"no"})
