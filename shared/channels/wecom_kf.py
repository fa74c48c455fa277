"""WeChat Customer Service (微信客服) through WeCom: callback, pull, reply, session state.

WeCom's callback (encrypted XML, signed with the corp's token; ``receiveid`` = corpid) only says that
messages are waiting (``kf_msg_or_event``) and carries a short-lived ``Token``. The job then pulls them
with ``/cgi-bin/kf/sync_msg`` from a cursor stored per ``open_kfid`` (under a lock, so no message is read
twice or skipped), and answers with ``/cgi-bin/kf/send_msg`` within 48 hours and 5 messages of the
customer's last message. Session states: 0 untreated, 1 smart assistant (kefu), 2 queued, 3 a human
in WeCom, 4 ended; WeCom refuses sends that the state does not allow (95018).
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum

import httpx
from pydantic import BaseModel, Field, HttpUrl

from shared.channels.base import (
    STAFF_ENDED_SESSION,
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
    WindowClosed,
    WindowState,
)
from shared.channels.platform_api import PlatformApi, fetch_json, raise_for_errcode
from shared.channels.replies import WECHAT_TEXT_LIMIT_BYTES, compose_reply
from shared.channels.state import ChannelState
from shared.channels.tokens import AccessTokens, FetchedToken
from shared.channels.wechat_crypto import WeChatCipher, check_signature, parse_xml
from shared.channels.windows import WECOM_KF_WINDOWS, ReplyWindows
from shared.config_section import ConfigSection

WECOM_API = "https://qyapi.weixin.qq.com"
MAX_CLOCK_SKEW_SECONDS = 300.0
_ORIGIN_CUSTOMER = 3
_ORIGIN_EVENT = 4  # events WeCom pushes into the pull (session changes, a customer entering…)
# session_status_change's change_type when a reception servicer ended the session (1: took it from the
# pool, 2: transferred it, 4: took an ended session up again).
_SESSION_ENDED = 3
_PULL_LIMIT = 1000
_MAX_PAGES = 50  # one pull reads at most this many pages; the next callback continues from the cursor
_PULL_LOCK_SECONDS = 30.0
_CURSOR_TTL_SECONDS = 400 * 24 * 3600


class SessionState(IntEnum):
    UNTREATED = 0
    SMART_ASSISTANT = 1
    QUEUED = 2
    HUMAN_IN_WECOM = 3
    ENDED = 4


@dataclass(frozen=True)
class WeComKfConfig:
    corp_id: str
    token: str
    encoding_aes_key: str
    corp_secret: str  # the secret of WeCom's 微信客服 application
    api_base_url: str = WECOM_API
    text_limit_bytes: int = WECHAT_TEXT_LIMIT_BYTES
    # Hand-offs go to WeCom's own reception staff (state 3) instead of kefu's console.
    handoff_to_wecom_servicer: str | None = None


class WeComKfChannel(Channel):
    kind = "wecom_kf"
    ack_deadline_seconds = 5.0

    def __init__(
        self,
        channel_id: str,
        config: WeComKfConfig,
        state: ChannelState,
        http: httpx.Client,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(channel_id)
        self.config = config
        self._state = state
        self._clock = clock
        self._cipher = WeChatCipher(config.encoding_aes_key, config.corp_id)
        base = config.api_base_url.rstrip("/")

        def fetch_token() -> FetchedToken:
            payload = fetch_json(
                http, f"{base}/cgi-bin/gettoken", {"corpid": config.corp_id, "corpsecret": config.corp_secret}
            )
            raise_for_errcode(payload)
            return FetchedToken(str(payload["access_token"]), float(payload.get("expires_in", 7200)))

        self.tokens = AccessTokens(state, f"wecom:{config.corp_id}:{_secret_tag(config.corp_secret)}", fetch_token)
        self.api = PlatformApi(http, base, self.tokens)
        self.windows = ReplyWindows(state, channel_id, WECOM_KF_WINDOWS, clock)

    # --- inbound ---

    def verify(self, request: InboundRequest) -> None:
        query = request.query
        timestamp, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if request.method == "GET":
            encrypted = query.get("echostr", "")
        else:
            encrypted = parse_xml(request.body).get("Encrypt", "")
            try:
                skew = abs(self._clock() - float(timestamp))
            except ValueError as exc:
                raise SignatureInvalid("timestamp is not a number") from exc
            if skew > MAX_CLOCK_SKEW_SECONDS:
                raise SignatureInvalid("timestamp too far from now")
        check_signature(query.get("msg_signature"), self.config.token, timestamp, nonce, encrypted)

    def acknowledge(self, request: InboundRequest) -> Acknowledgement:
        if request.method == "GET":  # URL verification: echo the decrypted echostr
            return Acknowledgement(body=self._cipher.decrypt(request.query.get("echostr", "")))
        return Acknowledgement(body="success")

    def parse(self, request: InboundRequest) -> list[VisitorMessage | PullNotice]:
        if request.method != "POST":
            return []
        fields = parse_xml(self._cipher.decrypt(parse_xml(request.body).get("Encrypt", "")))
        if fields.get("MsgType") != "event" or fields.get("Event") != "kf_msg_or_event":
            return []  # other WeCom callbacks (contacts, approvals…) are not ours
        open_kfid, token = fields.get("OpenKfId", ""), fields.get("Token", "")
        if not open_kfid:
            raise MalformedRequest("kf_msg_or_event without OpenKfId")
        return [PullNotice(self.channel_id, open_kfid, token)]

    def collect(self, notice: PullNotice) -> list[VisitorMessage]:
        """Pull every waiting message from the stored cursor; the cursor moves after each page.

        One puller per account at a time (a lock). A notice that finds the lock taken leaves a
        "pull again" mark and tries the lock once more: either the holder sees the mark before it
        lets go (and pulls again), or this call gets the lock. So a message that arrives while
        another job is pulling is never left waiting for the next callback."""
        lock_key = f"chan:pull-lock:{self.channel_id}:{notice.open_kfid}"
        again_key = f"chan:pull-again:{self.channel_id}:{notice.open_kfid}"
        owner = uuid.uuid4().hex
        messages: list[VisitorMessage] = []
        while True:
            if not self._state.put_if_absent(lock_key, {"owner": owner}, _PULL_LOCK_SECONDS):
                self._state.put(again_key, {"token": notice.token}, _PULL_LOCK_SECONDS)
                if not self._state.put_if_absent(lock_key, {"owner": owner}, _PULL_LOCK_SECONDS):
                    return messages  # the holder will see the mark
            try:
                while True:
                    self._state.delete(again_key)
                    messages.extend(self._pull(notice))
                    if self._state.get(again_key) is None:
                        break
            finally:
                self._state.delete(lock_key, only_if={"owner": owner})
            if self._state.get(again_key) is None:
                return messages

    def _pull(self, notice: PullNotice) -> list[VisitorMessage]:
        cursor_key = f"chan:cursor:{self.channel_id}:{notice.open_kfid}"
        stored = self._state.get(cursor_key)
        cursor = "" if stored is None else str(stored["cursor"])
        messages: list[VisitorMessage] = []
        for _ in range(_MAX_PAGES):
            body: dict[str, object] = {"cursor": cursor, "limit": _PULL_LIMIT, "open_kfid": notice.open_kfid}
            if notice.token:
                body["token"] = notice.token
            page = self.api.post("/cgi-bin/kf/sync_msg", body)
            for item in page.get("msg_list", []):
                message = self._visitor_message(item, notice.open_kfid)
                if message is not None:
                    messages.append(message)
            next_cursor = str(page.get("next_cursor", "") or cursor)
            if next_cursor != cursor:
                cursor = next_cursor
                self._state.put(cursor_key, {"cursor": cursor}, _CURSOR_TTL_SECONDS)
            if not page.get("has_more"):
                break
        return messages

    def _visitor_message(self, item: dict[str, object], open_kfid: str) -> VisitorMessage | None:
        if item.get("origin") == _ORIGIN_EVENT and item.get("msgtype") == "event":
            return self._session_ended(item, open_kfid)
        if item.get("origin") != _ORIGIN_CUSTOMER:
            return None  # our own sends and WeCom staff messages come back in the pull too
        external_userid = str(item.get("external_userid", ""))
        msgid = str(item.get("msgid", ""))
        if not external_userid or not msgid:
            return None
        customer = customer_key(open_kfid, external_userid)
        msgtype = str(item.get("msgtype", ""))
        text_block = item.get("text")
        text = str(text_block.get("content", "")) if msgtype == "text" and isinstance(text_block, dict) else ""
        sent_at = float(item.get("send_time", 0) or 0)  # type: ignore[arg-type]
        return VisitorMessage(
            self.channel_id, customer, msgid, text, sent_at, msgtype, "message", extra={"open_kfid": open_kfid}
        )

    def _session_ended(self, item: dict[str, object], open_kfid: str) -> VisitorMessage | None:
        """A reception servicer in WeCom ended the customer's session: an event (no text) for the desk,
        which gives the conversation back to kefu's bot. Other events are not kefu's business."""
        event = item.get("event")
        if not isinstance(event, dict) or event.get("event_type") != "session_status_change":
            return None
        if event.get("change_type") != _SESSION_ENDED:
            return None
        external_userid = str(event.get("external_userid") or item.get("external_userid") or "")
        msgid = str(item.get("msgid", ""))
        if not external_userid or not msgid:
            return None
        kfid = str(event.get("open_kfid") or open_kfid)
        sent_at = float(item.get("send_time", 0) or 0)  # type: ignore[arg-type]
        extra = {"event": STAFF_ENDED_SESSION, "open_kfid": kfid}
        if event.get("old_servicer_userid"):
            extra["servicer"] = str(event["old_servicer_userid"])
        customer = customer_key(kfid, external_userid)
        return VisitorMessage(self.channel_id, customer, msgid, "", sent_at, "event", "none", extra=extra)

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
        open_kfid, external_userid = split_customer(customer_id)
        parts = compose_reply(text, citations, self.config.text_limit_bytes)
        allowed = self.windows.consume(customer_id, len(parts)) if parts else 0
        sent_ids: list[str] = []
        for part in parts[:allowed]:
            body = {"touser": external_userid, "open_kfid": open_kfid, "msgtype": "text", "text": {"content": part}}
            try:
                answer = self.api.post("/cgi-bin/kf/send_msg", body)
            except WindowClosed as exc:
                self.windows.closed(customer_id, exc.reason)
                if not sent_ids:
                    raise
                break
            sent_ids.append(str(answer.get("msgid", "")))
        return SendReport(len(sent_ids), len(parts), sent_ids)

    def window(self, customer_id: str) -> WindowState:
        return self.windows.state(customer_id)

    def session_state(self, customer_id: str) -> SessionState:
        open_kfid, external_userid = split_customer(customer_id)
        payload = self.api.post(
            "/cgi-bin/kf/service_state/get", {"open_kfid": open_kfid, "external_userid": external_userid}
        )
        return SessionState(int(payload.get("service_state", 0)))

    def hand_off(self, customer_id: str) -> str | None:
        """With ``handoffToWecomServicer``, a handoff moves the session to that WeCom servicer (state 3)."""
        servicer = self.config.handoff_to_wecom_servicer
        if not servicer:
            return None
        self.transfer(customer_id, SessionState.HUMAN_IN_WECOM, servicer)
        return servicer

    def transfer(self, customer_id: str, to: SessionState, servicer_userid: str | None = None) -> None:
        """Move the session (to 1 when kefu takes it, to 3 with a WeCom servicer for a human hand-off)."""
        if to == SessionState.HUMAN_IN_WECOM and not servicer_userid:
            raise ChannelError("a transfer to WeCom's reception staff needs a servicer_userid")
        open_kfid, external_userid = split_customer(customer_id)
        body: dict[str, object] = {"open_kfid": open_kfid, "external_userid": external_userid, "service_state": int(to)}
        if servicer_userid:
            body["servicer_userid"] = servicer_userid
        self.api.post("/cgi-bin/kf/service_state/trans", body)


def customer_key(open_kfid: str, external_userid: str) -> str:
    """kefu's customer id on this channel: the same WeChat user in two service accounts is two customers."""
    return f"{open_kfid}/{external_userid}"


def split_customer(customer_id: str) -> tuple[str, str]:
    open_kfid, sep, external_userid = customer_id.partition("/")
    if not sep or not open_kfid or not external_userid:
        raise ChannelError(f"not a WeCom customer id: {customer_id!r}")
    return open_kfid, external_userid


def _secret_tag(secret: str) -> str:
    """Tokens are per (corp, application secret): a short hash tells two applications of one corp apart."""
    return hashlib.sha256(secret.encode()).hexdigest()[:12]


class Fields(ConfigSection):
    """What the admin API stores for a ``wecom_kf`` channel (secrets by name)."""


    corp_id: str = Field(min_length=1, max_length=64)
    token: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9]+$")
    encoding_aes_key: str = Field(min_length=1, max_length=256, description="name of the tenant secret")
    corp_secret: str = Field(min_length=1, max_length=256, description="name of the tenant secret")
    api_base_url: HttpUrl = HttpUrl(WECOM_API)
    handoff_to_wecom_servicer: str | None = Field(default=None, max_length=64)


def build(
    channel_id: str, fields: BaseModel, secret: Callable[[str], str], state: ChannelState, http: httpx.Client
) -> WeComKfChannel:
    assert isinstance(fields, Fields)
    config = WeComKfConfig(
        corp_id=fields.corp_id,
        token=fields.token,
        encoding_aes_key=secret(fields.encoding_aes_key),
        corp_secret=secret(fields.corp_secret),
        api_base_url=str(fields.api_base_url),
        handoff_to_wecom_servicer=fields.handoff_to_wecom_servicer,
    )
    return WeComKfChannel(channel_id, config, state, http)
