"""FakeWeChatServer and FakeWeComServer: stand-ins for WeChat's and WeCom's HTTP APIs, written from
their public docs, served on loopback (uvicorn, real HTTP) so kefu's channel adapters run unchanged
against them through ``apiBaseUrl``.

What they enforce, as the platforms do: access tokens (a new one invalidates the previous: 40001;
``expire_tokens`` makes the current one answer 42001), reply windows of 48 hours and 5 messages after
the customer's last message (45015 when the time has passed, 45047 when the quota is used up),
``sync_msg`` pages from a cursor, and WeCom session states (send refused with 95018 in states 2-4).
Errors are ``{"errcode", "errmsg"}`` with HTTP 200. ``WeChatUser`` and ``WeComCustomer`` build the
signed (and, in safe mode, encrypted) callbacks the platforms would post to kefu.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from shared.channels.base import InboundRequest
from shared.channels.wechat_crypto import WeChatCipher, build_xml, signature
from tests.support.recording_server import Receive, RecordingServer, Scope, Send

WINDOW_SECONDS = 48 * 3600
WINDOW_MESSAGES = 5


def _error(code: int, message: str) -> JSONResponse:
    return JSONResponse({"errcode": code, "errmsg": message})


@dataclass
class _Window:
    opened_at: float
    left: int = WINDOW_MESSAGES


@dataclass
class _Tokens:
    """The platform's token book: one current token per credential; older ones are invalid."""

    current: dict[str, str] = field(default_factory=dict)
    expired: set[str] = field(default_factory=set)
    issued: int = 0

    def issue(self, credential: str) -> str:
        self.issued += 1
        token = f"TOKEN-{self.issued}-{uuid.uuid4().hex[:8]}"
        self.current[credential] = token
        return token

    def check(self, token: str) -> JSONResponse | None:
        if token in self.expired:
            return _error(42001, "access_token expired")
        if token not in self.current.values():
            return _error(40001, "invalid credential, access_token is invalid or not latest")
        return None


class _FakePlatform(RecordingServer[None, dict[str, Any]]):
    """Shared plumbing: a Starlette app, a lock around the platform's state, a settable clock."""

    def __init__(self) -> None:
        super().__init__(None)
        self.lock = threading.Lock()
        self.tokens = _Tokens()
        self.clock_offset = 0.0
        self.sent: list[dict[str, Any]] = []  # accepted sends, in order
        self.token_requests = 0
        self._routes = Starlette(routes=self.routes())

    def now(self) -> float:
        return time.time() + self.clock_offset

    def routes(self) -> list[Route]:
        raise NotImplementedError

    def expire_tokens(self) -> None:
        """The current tokens reach their 7,200 s: calls with them now get 42001."""
        with self.lock:
            self.tokens.expired.update(self.tokens.current.values())

    async def _app(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._routes(scope, receive, send)

    async def _json(self, request: Request) -> dict[str, Any]:
        body = await request.body()
        record = {"path": request.url.path, "query": dict(request.query_params), "body": body.decode()}
        self.requests.append(record)
        try:
            payload = json.loads(body)
        except ValueError:
            return {}
        return payload if isinstance(payload, dict) else {}

    def _check_window(self, windows: dict[str, _Window], customer: str) -> JSONResponse | None:
        window = windows.get(customer)
        if window is None or self.now() - window.opened_at > WINDOW_SECONDS:
            return _error(45015, "response out of time limit or subscription is canceled")
        if window.left <= 0:
            return _error(45047, "out of response count limit")
        return None


class FakeWeChatServer(_FakePlatform):
    """WeChat Official Account API: ``/cgi-bin/token``, ``/cgi-bin/message/custom/send|typing``."""

    name = "fake WeChat API"

    def __init__(self, app_id: str, app_secret: str) -> None:
        self.app_id = app_id
        self.app_secret = app_secret
        self.windows: dict[str, _Window] = {}
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/cgi-bin/token", self._token, methods=["GET"]),
            Route("/cgi-bin/message/custom/send", self._send, methods=["POST"]),
            Route("/cgi-bin/message/custom/typing", self._typing, methods=["POST"]),
        ]

    def user_wrote(self, openid: str, at: float | None = None) -> None:
        """The user sent the account a message: a window of 48 hours and 5 messages opens."""
        with self.lock:
            self.windows[openid] = _Window(self.now() if at is None else at)

    async def _token(self, request: Request) -> JSONResponse:
        params = request.query_params
        with self.lock:
            self.token_requests += 1
            if params.get("grant_type") != "client_credential":
                return _error(40002, "invalid grant_type")
            if params.get("appid") != self.app_id or params.get("secret") != self.app_secret:
                return _error(40125, "invalid appsecret")
            return JSONResponse({"access_token": self.tokens.issue(self.app_id), "expires_in": 7200})

    async def _send(self, request: Request) -> JSONResponse:
        payload = await self._json(request)
        with self.lock:
            refused = self.tokens.check(request.query_params.get("access_token", ""))
            if refused is not None:
                return refused
            touser = payload.get("touser")
            if payload.get("msgtype") != "text" or not isinstance(payload.get("text"), dict) or not touser:
                return _error(44002, "empty post data or bad message")
            if len(str(payload["text"].get("content", "")).encode()) > 2048:
                return _error(45002, "content size out of limit")
            refused = self._check_window(self.windows, str(touser))
            if refused is not None:
                return refused
            self.windows[str(touser)].left -= 1
            self.sent.append(payload)
            return _error(0, "ok")

    async def _typing(self, request: Request) -> JSONResponse:
        await self._json(request)
        with self.lock:
            return self.tokens.check(request.query_params.get("access_token", "")) or _error(0, "ok")


@dataclass
class _KfMessage:
    msgid: str
    open_kfid: str
    external_userid: str
    origin: int
    send_time: int
    text: str
    msgtype: str = "text"
    # origin 4 (a system event): the ``event`` object WeCom puts in the pull
    event: dict[str, Any] | None = None


class FakeWeComServer(_FakePlatform):
    """WeCom 微信客服 API: ``/cgi-bin/gettoken``, ``/cgi-bin/kf/sync_msg``, ``/cgi-bin/kf/send_msg``,
    ``/cgi-bin/kf/service_state/get|trans``."""

    name = "fake WeCom API"

    def __init__(self, corp_id: str, corp_secret: str) -> None:
        self.corp_id = corp_id
        self.corp_secret = corp_secret
        self.messages: list[_KfMessage] = []
        self.windows: dict[str, _Window] = {}
        self.states: dict[str, int] = {}
        self.callback_tokens: set[str] = set()
        self.sync_calls = 0
        self.page_size = 1000  # tests lower it to see has_more pages
        self._ids = itertools.count(1)
        super().__init__()

    def routes(self) -> list[Route]:
        return [
            Route("/cgi-bin/gettoken", self._token, methods=["GET"]),
            Route("/cgi-bin/kf/sync_msg", self._sync, methods=["POST"]),
            Route("/cgi-bin/kf/send_msg", self._send, methods=["POST"]),
            Route("/cgi-bin/kf/service_state/get", self._state_get, methods=["POST"]),
            Route("/cgi-bin/kf/service_state/trans", self._state_trans, methods=["POST"]),
        ]

    def customer_wrote(self, open_kfid: str, external_userid: str, text: str, msgtype: str = "text") -> str:
        """A WeChat user wrote (or sent an image, … with ``msgtype``) in the customer-service account;
        returns the callback's ``Token``."""
        with self.lock:
            key = f"{open_kfid}/{external_userid}"
            self.messages.append(
                _KfMessage(f"msg{next(self._ids)}", open_kfid, external_userid, 3, int(self.now()), text, msgtype)
            )
            self.windows[key] = _Window(self.now())
            if self.states.get(key, 0) == 4:  # an ended session: the customer's message starts a new one
                self.states[key] = 0
            self.states.setdefault(key, 0)
            return self._callback_token()

    def servicer_ended(self, open_kfid: str, external_userid: str, servicer_userid: str) -> str:
        """A reception servicer ended the session in WeCom's client (state 4), which WeCom reports as a
        ``session_status_change`` event (origin 4, change_type 3) in the pull; returns the callback's Token."""
        with self.lock:
            key = f"{open_kfid}/{external_userid}"
            self.states[key] = 4
            event = {
                "event_type": "session_status_change",
                "open_kfid": open_kfid,
                "external_userid": external_userid,
                "change_type": 3,
                "old_servicer_userid": servicer_userid,
                "msg_code": uuid.uuid4().hex[:16],
            }
            self.messages.append(
                _KfMessage(f"evt{next(self._ids)}", open_kfid, external_userid, 4, int(self.now()), "", "event", event)
            )
            return self._callback_token()

    def _callback_token(self) -> str:
        token = f"CB{uuid.uuid4().hex[:10]}"
        self.callback_tokens.add(token)
        return token

    async def _token(self, request: Request) -> JSONResponse:
        params = request.query_params
        with self.lock:
            self.token_requests += 1
            if params.get("corpid") != self.corp_id or params.get("corpsecret") != self.corp_secret:
                return _error(40001, "invalid secret")
            return JSONResponse(
                {"errcode": 0, "errmsg": "ok", "access_token": self.tokens.issue(self.corp_id), "expires_in": 7200}
            )

    async def _sync(self, request: Request) -> JSONResponse:
        payload = await self._json(request)
        with self.lock:
            self.sync_calls += 1
            refused = self.tokens.check(request.query_params.get("access_token", ""))
            if refused is not None:
                return refused
            token = payload.get("token")
            if token and token not in self.callback_tokens:
                return _error(95007, "invalid msg token")
            cursor = str(payload.get("cursor") or "0")
            if not cursor.isdigit():
                return _error(95006, "invalid cursor")
            limit = min(int(payload.get("limit") or 1000), 1000, self.page_size)
            kfid = payload.get("open_kfid")
            start = int(cursor)
            mine = [
                (index, m)
                for index, m in enumerate(self.messages)
                if index >= start and (not kfid or m.open_kfid == kfid)
            ]
            page = mine[:limit]
            next_cursor = page[-1][0] + 1 if page else start
            return JSONResponse(
                {
                    "errcode": 0,
                    "errmsg": "ok",
                    "next_cursor": str(next_cursor),
                    "has_more": 1 if len(mine) > limit else 0,
                    "msg_list": [_pulled(m) for _, m in page],
                }
            )

    async def _send(self, request: Request) -> JSONResponse:
        payload = await self._json(request)
        with self.lock:
            refused = self.tokens.check(request.query_params.get("access_token", ""))
            if refused is not None:
                return refused
            key = f"{payload.get('open_kfid')}/{payload.get('touser')}"
            if payload.get("msgtype") != "text" or not isinstance(payload.get("text"), dict):
                return _error(44004, "empty content")
            content = str(payload["text"].get("content", ""))
            if len(content.encode()) > 2048:
                return _error(45002, "content size out of limit")
            if self.states.get(key, 0) not in (0, 1):
                return _error(95018, "invalid service state")
            refused = self._check_window(self.windows, key)
            if refused is not None:
                return refused
            self.windows[key].left -= 1
            self.states[key] = 1  # the API answering puts the session with the smart assistant
            msgid = f"sent{next(self._ids)}"
            self.messages.append(
                _KfMessage(msgid, str(payload["open_kfid"]), str(payload["touser"]), 5, int(self.now()), content)
            )
            self.sent.append(payload)
            return JSONResponse({"errcode": 0, "errmsg": "ok", "msgid": msgid})

    async def _state_get(self, request: Request) -> JSONResponse:
        payload = await self._json(request)
        with self.lock:
            refused = self.tokens.check(request.query_params.get("access_token", ""))
            if refused is not None:
                return refused
            key = f"{payload.get('open_kfid')}/{payload.get('external_userid')}"
            return JSONResponse({"errcode": 0, "errmsg": "ok", "service_state": self.states.get(key, 0)})

    async def _state_trans(self, request: Request) -> JSONResponse:
        payload = await self._json(request)
        with self.lock:
            refused = self.tokens.check(request.query_params.get("access_token", ""))
            if refused is not None:
                return refused
            key = f"{payload.get('open_kfid')}/{payload.get('external_userid')}"
            target = int(payload.get("service_state", -1))
            if target not in range(5):
                return _error(95016, "invalid service state")
            if target == 3 and not payload.get("servicer_userid"):
                return _error(95014, "servicer_userid required")
            self.states[key] = target
            return JSONResponse({"errcode": 0, "errmsg": "ok"})


def _pulled(message: _KfMessage) -> dict[str, Any]:
    """One ``msg_list`` item as sync_msg returns it (events carry no external_userid of their own)."""
    item: dict[str, Any] = {
        "msgid": message.msgid,
        "open_kfid": message.open_kfid,
        "send_time": message.send_time,
        "origin": message.origin,
        "msgtype": message.msgtype,
    }
    if message.event is not None:
        item["event"] = message.event
        return item
    item["external_userid"] = message.external_userid
    if message.msgtype == "text":
        item["text"] = {"content": message.text}
    else:  # media: WeCom gives a media_id to fetch with /cgi-bin/kf/media/get (kefu does not)
        item[message.msgtype] = {"media_id": f"media-{message.msgid}"}
    return item


class WeChatUser:
    """Builds the requests WeChat posts to an account's server URL (plaintext or safe mode)."""

    def __init__(self, token: str, app_id: str, openid: str, encoding_aes_key: str | None = None) -> None:
        self.token = token
        self.app_id = app_id
        self.openid = openid
        self.cipher = WeChatCipher(encoding_aes_key, app_id) if encoding_aes_key else None
        self._ids = itertools.count(24_000_000_000_000_000 + int(time.time()))

    def _query(self, timestamp: float | None) -> dict[str, str]:
        stamp = str(int(time.time() if timestamp is None else timestamp))
        nonce = uuid.uuid4().hex[:10]
        return {"timestamp": stamp, "nonce": nonce, "signature": signature(self.token, stamp, nonce)}

    def url_check(self, echostr: str = "echo-123") -> InboundRequest:
        return InboundRequest("GET", {**self._query(None), "echostr": echostr}, {})

    def text(self, content: str, msg_id: int | None = None, timestamp: float | None = None) -> InboundRequest:
        fields: dict[str, str | int] = {
            "ToUserName": "gh_account",
            "FromUserName": self.openid,
            "CreateTime": int(time.time() if timestamp is None else timestamp),
            "MsgType": "text",
            "Content": content,
            "MsgId": next(self._ids) if msg_id is None else msg_id,
        }
        return self.post(fields, timestamp)

    def event(self, event: str, key: str = "", timestamp: float | None = None) -> InboundRequest:
        fields: dict[str, str | int] = {
            "ToUserName": "gh_account",
            "FromUserName": self.openid,
            "CreateTime": int(time.time() if timestamp is None else timestamp),
            "MsgType": "event",
            "Event": event,
            "EventKey": key,
        }
        return self.post(fields, timestamp)

    def post(self, fields: dict[str, str | int], timestamp: float | None = None) -> InboundRequest:
        query = self._query(timestamp)
        plain = build_xml(fields)
        if self.cipher is None:
            return InboundRequest("POST", query, {"content-type": "text/xml"}, plain.encode())
        cipher_text = self.cipher.encrypt(plain)
        body = build_xml({"ToUserName": "gh_account", "Encrypt": cipher_text})
        query = {
            **query,
            "encrypt_type": "aes",
            "msg_signature": signature(self.token, query["timestamp"], query["nonce"], cipher_text),
        }
        return InboundRequest("POST", query, {"content-type": "text/xml"}, body.encode())


class WeComCallbacks:
    """Builds WeCom's callbacks to kefu (always encrypted; ``receiveid`` = corpid)."""

    def __init__(self, token: str, encoding_aes_key: str, corp_id: str) -> None:
        self.token = token
        self.corp_id = corp_id
        self.cipher = WeChatCipher(encoding_aes_key, corp_id)

    def _query(self, encrypted: str) -> dict[str, str]:
        stamp = str(int(time.time()))
        nonce = uuid.uuid4().hex[:10]
        return {"timestamp": stamp, "nonce": nonce, "msg_signature": signature(self.token, stamp, nonce, encrypted)}

    def url_check(self, echostr: str = "wecom-echo-42") -> InboundRequest:
        encrypted = self.cipher.encrypt(echostr)
        return InboundRequest("GET", {**self._query(encrypted), "echostr": encrypted}, {})

    def messages_waiting(self, open_kfid: str, token: str) -> InboundRequest:
        plain = build_xml(
            {
                "ToUserName": self.corp_id,
                "CreateTime": int(time.time()),
                "MsgType": "event",
                "Event": "kf_msg_or_event",
                "Token": token,
                "OpenKfId": open_kfid,
            }
        )
        encrypted = self.cipher.encrypt(plain)
        body = build_xml({"ToUserName": self.corp_id, "AgentID": "", "Encrypt": encrypted})
        return InboundRequest("POST", self._query(encrypted), {"content-type": "text/xml"}, body.encode())
