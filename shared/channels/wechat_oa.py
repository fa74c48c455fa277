"""WeChat Official Account (公众号) channel: plaintext and safe mode.

Inbound: WeChat verifies the server URL with ``GET ?signature&timestamp&nonce&echostr`` and posts each
user message as XML (in safe mode inside ``<Encrypt>``, signed by ``msg_signature``). kefu answers
``success`` at once (WeChat retries after 5 s, three times) and sends the answer later through the
customer-service message API (``/cgi-bin/message/custom/send``), within the user's reply window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import httpx
from pydantic import BaseModel, Field, HttpUrl

from shared.channels.base import (
    Acknowledgement,
    Channel,
    InboundRequest,
    MalformedRequest,
    OutboundCitation,
    OutboundKind,
    PullNotice,
    SendReport,
    SignatureInvalid,
    VisitorMessage,
    WindowClosed,
    WindowState,
)
from shared.channels.platform_api import PlatformApi, fetch_json, raise_for_errcode
from shared.channels.replies import WECHAT_TEXT_LIMIT_BYTES, compose_reply
from shared.channels.state import ChannelState
from shared.channels.tokens import AccessTokens, FetchedToken
from shared.channels.wechat_crypto import WeChatCipher, check_signature, parse_xml
from shared.channels.windows import WECHAT_OA_WINDOWS, ReplyWindows
from shared.config_section import ConfigSection

WECHAT_API = "https://api.weixin.qq.com"
# Events that open the short window (1 minute, 3 messages) and carry no question.
_WINDOW_EVENTS = frozenset({"subscribe", "click", "scan", "view"})
# Timestamps further than this from now are refused (replays of captured requests).
MAX_CLOCK_SKEW_SECONDS = 300.0


@dataclass(frozen=True)
class WeChatOAConfig:
    app_id: str
    token: str
    app_secret: str
    encoding_aes_key: str | None = None  # set: safe mode (and compatible mode) bodies are decrypted
    api_base_url: str = WECHAT_API
    text_limit_bytes: int = WECHAT_TEXT_LIMIT_BYTES


class WeChatOAChannel(Channel):
    kind = "wechat_oa"
    ack_deadline_seconds = 5.0

    def __init__(
        self,
        channel_id: str,
        config: WeChatOAConfig,
        state: ChannelState,
        http: httpx.Client,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(channel_id)
        self.config = config
        self._clock = clock
        self._cipher = WeChatCipher(config.encoding_aes_key, config.app_id) if config.encoding_aes_key else None
        base = config.api_base_url.rstrip("/")
        self.tokens = AccessTokens(state, f"wechat_oa:{config.app_id}", lambda: self._fetch_token(http, base))
        self.api = PlatformApi(http, base, self.tokens)
        self.windows = ReplyWindows(state, channel_id, WECHAT_OA_WINDOWS, clock)

    def _fetch_token(self, http: httpx.Client, base: str) -> FetchedToken:
        params = {"grant_type": "client_credential", "appid": self.config.app_id, "secret": self.config.app_secret}
        payload = fetch_json(http, f"{base}/cgi-bin/token", params)
        raise_for_errcode(payload)
        return FetchedToken(str(payload["access_token"]), float(payload.get("expires_in", 7200)))

    # --- inbound ---

    def verify(self, request: InboundRequest) -> None:
        query = request.query
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        check_signature(query.get("signature"), self.config.token, timestamp, nonce)
        try:
            skew = abs(self._clock() - float(timestamp))
        except ValueError as exc:
            raise SignatureInvalid("timestamp is not a number") from exc
        # The URL handshake is done once by the platform's console; messages must be fresh.
        if request.method == "POST" and skew > MAX_CLOCK_SKEW_SECONDS:
            raise SignatureInvalid("timestamp too far from now")
        encrypted_body = query.get("encrypt_type") == "aes"
        if request.method == "POST" and self._cipher is not None and not encrypted_body:
            # Plaintext mode's signature covers only the timestamp and nonce, not the body: a channel
            # set up for safe mode takes nothing WeChat did not encrypt.
            raise SignatureInvalid("this channel is in safe mode: plaintext messages are refused")
        if request.method == "POST" and encrypted_body:
            if self._cipher is None:
                raise SignatureInvalid("safe-mode message but no EncodingAESKey is configured")
            encrypted = parse_xml(request.body).get("Encrypt", "")
            check_signature(query.get("msg_signature"), self.config.token, timestamp, nonce, encrypted)

    def acknowledge(self, request: InboundRequest) -> Acknowledgement:
        if request.method == "GET":
            return Acknowledgement(body=request.query.get("echostr", ""))
        return Acknowledgement(body="success")

    def parse(self, request: InboundRequest) -> list[VisitorMessage | PullNotice]:
        if request.method != "POST":
            return []
        fields = parse_xml(request.body)
        if request.query.get("encrypt_type") == "aes":
            assert self._cipher is not None  # verify() refused the request otherwise
            fields = parse_xml(self._cipher.decrypt(fields.get("Encrypt", "")))
        if fields.get("ToUserName") is None or not fields.get("FromUserName"):
            raise MalformedRequest("message lacks ToUserName/FromUserName")
        openid = fields["FromUserName"]
        msg_type = fields.get("MsgType", "")
        try:
            sent_at = float(fields.get("CreateTime", "0"))
        except ValueError as exc:
            raise MalformedRequest("CreateTime is not a number") from exc
        if msg_type == "event":
            event = fields.get("Event", "").lower()
            # Events have no MsgId: WeChat's documented key is the sender and the creation time.
            message_id = f"event:{openid}:{fields.get('CreateTime', '')}"
            opens: Literal["event", "none"] = "event" if event in _WINDOW_EVENTS else "none"
            text = fields.get("EventKey", "") if event == "click" else ""
            return [
                VisitorMessage(
                    self.channel_id, openid, message_id, text, sent_at, "event", opens, extra={"event": event}
                )
            ]
        message_id = fields.get("MsgId") or f"{openid}:{fields.get('CreateTime', '')}"
        if msg_type == "text":
            text = fields.get("Content", "")
        elif msg_type == "voice" and fields.get("Recognition"):
            text = fields["Recognition"]  # WeChat's speech-to-text, when the account enabled it
        else:
            text = ""  # images, locations…: the conversation records them; nothing to answer from
        return [VisitorMessage(self.channel_id, openid, message_id, text, sent_at, msg_type, "message")]

    # --- outbound ---

    def customer_acted(self, message: VisitorMessage) -> None:
        if message.opens_window != "none":
            self.windows.opened(message.customer_id, message.opens_window, at=message.sent_at or None)

    def send(
        self,
        customer_id: str,
        text: str,
        citations: list[OutboundCitation] | None = None,
        kind: OutboundKind = "answer",
    ) -> SendReport:
        parts = compose_reply(text, citations, self.config.text_limit_bytes)
        allowed = self.windows.consume(customer_id, len(parts)) if parts else 0
        sent = 0
        for part in parts[:allowed]:
            body = {"touser": customer_id, "msgtype": "text", "text": {"content": part}}
            try:
                self.api.post("/cgi-bin/message/custom/send", body)
            except WindowClosed as exc:
                self.windows.closed(customer_id, exc.reason)
                if sent == 0:
                    raise
                break
            sent += 1
        return SendReport(sent, len(parts))

    def window(self, customer_id: str) -> WindowState:
        return self.windows.state(customer_id)

    def typing(self, customer_id: str) -> None:
        """Show "typing…" in the user's chat while the answer is written (best effort)."""
        self.api.post("/cgi-bin/message/custom/typing", {"touser": customer_id, "command": "Typing"})


class Fields(ConfigSection):
    """What the admin API stores for a ``wechat_oa`` channel (secrets by name)."""


    app_id: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=3, max_length=32, pattern=r"^[A-Za-z0-9]+$")  # WeChat's rule for the token
    app_secret: str = Field(min_length=1, max_length=256, description="name of the tenant secret holding the AppSecret")
    encoding_aes_key: str | None = Field(default=None, max_length=256, description="secret name; set for safe mode")
    api_base_url: HttpUrl = HttpUrl(WECHAT_API)


def build(
    channel_id: str, fields: BaseModel, secret: Callable[[str], str], state: ChannelState, http: httpx.Client
) -> WeChatOAChannel:
    assert isinstance(fields, Fields)
    config = WeChatOAConfig(
        app_id=fields.app_id,
        token=fields.token,
        app_secret=secret(fields.app_secret),
        encoding_aes_key=secret(fields.encoding_aes_key) if fields.encoding_aes_key else None,
        api_base_url=str(fields.api_base_url),
    )
    return WeChatOAChannel(channel_id, config, state, http)
