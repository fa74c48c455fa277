"""App webhook channel: a company's own app or backend talks to kefu over signed HTTP.

Inbound: the company's backend POSTs ``{"conversation", "user", "text", "clientMessageId"}`` with
``X-Kefu-Timestamp`` and ``X-Kefu-Signature: v1=<hex HMAC-SHA256 of "<timestamp>.<body>">`` (a shared
secret); requests older or newer than 5 minutes are refused as replays. It gets ``202`` with the id
back at once.
Outbound: answers, agent messages and status changes are POSTed to the company's URL, signed the
same way, retried with exponential backoff on network errors, 429 and 5xx; a delivery log keeps the
last deliveries and their failures for the console. The job sends one conversation's events one
after another, so they arrive in order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import httpx
from pydantic import BaseModel, Field, HttpUrl

from shared.channels.base import (
    Acknowledgement,
    Channel,
    ChannelError,
    InboundRequest,
    MalformedRequest,
    OutboundCitation,
    OutboundKind,
    PullNotice,
    SendReport,
    SignatureInvalid,
    VisitorMessage,
    WindowState,
)
from shared.channels.state import ChannelState
from shared.config_section import ConfigSection

TIMESTAMP_HEADER = "x-kefu-timestamp"
SIGNATURE_HEADER = "x-kefu-signature"
REPLAY_WINDOW_SECONDS = 300.0
MAX_BODY_BYTES = 64 * 1024
MAX_TEXT_CHARS = 8192
_LOG_ENTRIES = 50


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + body, hashlib.sha256)
    return f"v1={digest.hexdigest()}"


def check(secret: str, headers: dict[str, str], body: bytes, now: float) -> None:
    timestamp = headers.get(TIMESTAMP_HEADER, "")
    given = headers.get(SIGNATURE_HEADER, "")
    try:
        skew = abs(now - float(timestamp))
    except ValueError as exc:
        raise SignatureInvalid(f"missing or bad {TIMESTAMP_HEADER}") from exc
    if skew > REPLAY_WINDOW_SECONDS:
        raise SignatureInvalid("timestamp outside the 5-minute replay window")
    try:
        expected = sign(secret, timestamp, body)
    except UnicodeEncodeError as exc:
        raise SignatureInvalid(f"bad {TIMESTAMP_HEADER}") from exc
    if not hmac.compare_digest(expected.encode(), given.strip().encode()):
        raise SignatureInvalid("signature does not match")


@dataclass(frozen=True)
class WebhookConfig:
    secret: str  # signs both directions
    delivery_url: str
    max_attempts: int = 5
    first_backoff_seconds: float = 0.5
    timeout_seconds: float = 5.0


@dataclass(frozen=True)
class DeliveryRecord:
    delivery_id: str
    event_type: str
    conversation: str
    attempts: int
    status: str  # "delivered" | "failed"
    http_status: int | None
    error: str
    at: float


# How long the app's conversation id of a user is remembered after their last message.
_HINT_TTL = 30 * 24 * 3600.0


class DeliveryFailed(ChannelError):
    """Every attempt failed (or the company's server refused it for good); the record says why."""


class DeliveryLog:
    """The channel's last deliveries, newest last, in one versioned ``ChannelState`` item."""

    def __init__(self, state: ChannelState, channel_id: str) -> None:
        self._state = state
        self._key = f"chan:deliveries:{channel_id}"

    def record(self, entry: DeliveryRecord) -> None:
        for _ in range(8):
            current = self._state.get(self._key)
            version = None if current is None else int(current["_version"])
            entries = [] if current is None else list(current["entries"])
            entries = (entries + [asdict(entry)])[-_LOG_ENTRIES:]
            if self._state.put_if_version(self._key, {"entries": entries}, version, 30 * 24 * 3600):
                return

    def recent(self) -> list[DeliveryRecord]:
        current = self._state.get(self._key)
        return [] if current is None else [DeliveryRecord(**entry) for entry in current["entries"]]


class WebhookChannel(Channel):
    kind = "webhook"
    ack_deadline_seconds = 10.0

    def __init__(
        self,
        channel_id: str,
        config: WebhookConfig,
        state: ChannelState,
        http: httpx.Client,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__(channel_id)
        self.config = config
        self._http = http
        self._clock = clock
        self._sleep = sleep
        self._state = state
        self.log = DeliveryLog(state, channel_id)

    def _conversation_key(self, customer_id: str) -> str:
        return f"chan:app-conversation:{self.channel_id}:{customer_id}"

    def customer_acted(self, message: VisitorMessage) -> None:
        """Remember the app's own conversation id, so what kefu sends this user says where it belongs."""
        if message.conversation_hint:
            self._state.put(self._conversation_key(message.customer_id), {"id": message.conversation_hint}, _HINT_TTL)

    # --- inbound ---

    def verify(self, request: InboundRequest) -> None:
        if request.method != "POST":
            raise SignatureInvalid("only signed POSTs are accepted")
        if len(request.body) > MAX_BODY_BYTES:
            raise MalformedRequest("body too large")
        check(self.config.secret, request.headers, request.body, self._clock())

    def acknowledge(self, request: InboundRequest) -> Acknowledgement:
        client_id = self._read(request)["clientMessageId"]
        body = json.dumps({"accepted": True, "clientMessageId": client_id})
        return Acknowledgement(status=202, body=body, content_type="application/json")

    def parse(self, request: InboundRequest) -> list[VisitorMessage | PullNotice]:
        fields = self._read(request)
        return [
            VisitorMessage(
                self.channel_id,
                fields["user"],
                fields["clientMessageId"],
                fields["text"],
                self._clock(),
                "text",
                "none",
                conversation_hint=fields["conversation"],
            )
        ]

    @staticmethod
    def _read(request: InboundRequest) -> dict[str, str]:
        try:
            payload = json.loads(request.body)
        except ValueError as exc:
            raise MalformedRequest("body is not JSON") from exc
        if not isinstance(payload, dict):
            raise MalformedRequest("body must be a JSON object")
        fields: dict[str, str] = {}
        for name in ("conversation", "user", "text", "clientMessageId"):
            value = payload.get(name)
            if not isinstance(value, str) or not value.strip():
                raise MalformedRequest(f"'{name}' must be a non-empty string")
            fields[name] = value
        if len(fields["text"]) > MAX_TEXT_CHARS:
            raise MalformedRequest(f"'text' is longer than {MAX_TEXT_CHARS} characters")
        for name in ("conversation", "user", "clientMessageId"):
            if len(fields[name]) > 200:
                raise MalformedRequest(f"'{name}' is longer than 200 characters")
        return fields

    # --- outbound ---

    def send(
        self,
        customer_id: str,
        text: str,
        citations: list[OutboundCitation] | None = None,
        kind: OutboundKind = "answer",
    ) -> SendReport:
        hint = self._state.get(self._conversation_key(customer_id))
        event = {
            "type": kind,
            "conversation": hint["id"] if hint else None,
            "user": customer_id,
            "text": text,
            "citations": [{"title": c.title, "url": c.url} for c in citations or []],
        }
        delivery_id = self.deliver(event)
        return SendReport(1, 1, [delivery_id])

    def deliver(self, event: dict[str, Any]) -> str:
        """POST one event (answer, agent message, status) signed; retried; logged. Raises ``DeliveryFailed``."""
        delivery_id = uuid.uuid4().hex
        body = json.dumps({**event, "deliveryId": delivery_id}, ensure_ascii=False).encode("utf-8")
        backoff = self.config.first_backoff_seconds
        status: int | None = None
        error = ""
        attempt = 0
        for attempt in range(1, self.config.max_attempts + 1):
            timestamp = str(int(self._clock()))
            headers = {
                "content-type": "application/json",
                TIMESTAMP_HEADER: timestamp,
                SIGNATURE_HEADER: sign(self.config.secret, timestamp, body),
                "x-kefu-delivery": delivery_id,
            }
            try:
                response = self._http.post(
                    self.config.delivery_url, content=body, headers=headers, timeout=self.config.timeout_seconds
                )
                status, error = response.status_code, ""
                if status < 300:
                    self._log(delivery_id, event, attempt, "delivered", status, "")
                    return delivery_id
                error = f"HTTP {status}"
                if status < 500 and status != 429:
                    break  # the company's server refused this event; retrying will not change that
            except httpx.HTTPError as exc:
                status, error = None, type(exc).__name__
            if attempt < self.config.max_attempts:
                self._sleep(backoff)
                backoff *= 2
        self._log(delivery_id, event, attempt, "failed", status, error)
        raise DeliveryFailed(f"delivery {delivery_id} failed after {attempt} attempt(s): {error}")

    def _log(
        self, delivery_id: str, event: dict[str, Any], attempts: int, status: str, http: int | None, error: str
    ) -> None:
        self.log.record(
            DeliveryRecord(
                delivery_id,
                str(event.get("type", "")),
                str(event.get("conversation") or event.get("user", "")),
                attempts,
                status,
                http,
                error,
                self._clock(),
            )
        )

    def window(self, customer_id: str) -> WindowState:
        return WindowState(open=True, expires_at=None, remaining=None)


class Fields(ConfigSection):
    """What the admin API stores for a ``webhook`` channel (the signing secret by name)."""


    delivery_url: HttpUrl
    secret: str = Field(min_length=1, max_length=256, description="name of the tenant secret that signs both ways")
    max_attempts: int = Field(default=5, ge=1, le=10)


def build(
    channel_id: str, fields: BaseModel, secret: Callable[[str], str], state: ChannelState, http: httpx.Client
) -> WebhookChannel:
    assert isinstance(fields, Fields)
    config = WebhookConfig(secret(fields.secret), str(fields.delivery_url), max_attempts=fields.max_attempts)
    return WebhookChannel(channel_id, config, state, http)
