"""The channels function (functions/channels/handler.py) through fakes: HTTP API events in, the
platform's answers and status codes out (401 forged, 400 unreadable, 404 unknown or disabled, 500 when
the message could not be taken, so the platform retries)."""

from __future__ import annotations

import base64
from typing import Any

import httpx
import pytest

from functions.channels import handler as channels
from shared.channels.base import InboundRequest, PullNotice, VisitorMessage
from shared.channels.directory import ChannelDirectory, ChannelRecord
from shared.channels.inbox import ChannelAdapters, ChannelInbox
from shared.channels.registry import build_channel
from tests.events import channel_request_event, lambda_context
from tests.support.channel_state_fake import FakeChannelState
from tests.support.fake_wechat_platforms import WeChatUser

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
SECRETS = {"app-secret": "s3cret", "aes": AES_KEY}


def _no_platform_calls(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"the channels function called the platform: {request.url}")


class Desk:
    def __init__(self) -> None:
        self.delivered: list[tuple[str, VisitorMessage]] = []
        self.pulls: list[PullNotice] = []
        self.broken = False

    def deliver(self, record: ChannelRecord, message: VisitorMessage) -> None:
        if self.broken:
            raise RuntimeError("table unavailable")
        self.delivered.append((record.tenant_id, message))

    def queue_pull(self, record: ChannelRecord, notice: PullNotice) -> None:
        self.pulls.append(notice)


@pytest.fixture
def world() -> tuple[ChannelInbox, ChannelDirectory, Desk]:
    state = FakeChannelState()
    directory = ChannelDirectory(state)
    http = httpx.Client(transport=httpx.MockTransport(_no_platform_calls))

    def build(record: ChannelRecord) -> Any:
        return build_channel(record.kind, record.channel_id, record.fields, SECRETS.__getitem__, state, http)

    desk = Desk()
    return ChannelInbox(directory, state, ChannelAdapters(build), desk.deliver, desk.queue_pull), directory, desk


def _oa(directory: ChannelDirectory, *, safe: bool = False) -> ChannelRecord:
    fields = {"appId": "wx1", "token": "tok", "appSecret": "app-secret", "apiBaseUrl": "https://wechat.test"}
    return directory.create("t_1", "wechat_oa", {**fields, "encodingAesKey": "aes"} if safe else fields)


def _call(inbox: ChannelInbox, channel_id: str, request: InboundRequest) -> dict[str, Any]:
    event = channel_request_event(
        channel_id, method=request.method, query=request.query, headers=request.headers, body=request.body
    )
    return channels.handler(event, lambda_context("kefu-channels"), inbox=inbox)


def test_url_verification_echoes_and_a_message_is_taken_once(world: Any) -> None:
    inbox, directory, desk = world
    record = _oa(directory)
    user = WeChatUser("tok", "wx1", "o_user")
    check = _call(inbox, record.channel_id, user.url_check("echo-9"))
    assert (check["statusCode"], check["body"]) == (200, "echo-9")
    first = _call(inbox, record.channel_id, user.text("几点开门？", msg_id=7001))
    retry = _call(inbox, record.channel_id, user.text("几点开门？", msg_id=7001))
    assert (first["statusCode"], first["body"]) == (200, "success")
    assert (retry["statusCode"], retry["body"]) == (200, "success")
    assert [(tenant, m.platform_message_id, m.text) for tenant, m in desk.delivered] == [("t_1", "7001", "几点开门？")]


def test_a_safe_mode_message_is_decrypted(world: Any) -> None:
    inbox, directory, desk = world
    record = _oa(directory, safe=True)
    response = _call(inbox, record.channel_id, WeChatUser("tok", "wx1", "o_2", AES_KEY).text("加密的问题", msg_id=5))
    assert response["statusCode"] == 200
    assert [m.text for _, m in desk.delivered] == ["加密的问题"]


def test_refusals_map_to_status_codes(world: Any) -> None:
    inbox, directory, desk = world
    record = _oa(directory)
    forged = _call(inbox, record.channel_id, WeChatUser("wrong-token", "wx1", "o_3").text("hi"))
    assert forged["statusCode"] == 401
    signed = WeChatUser("tok", "wx1", "o_3").text("hi")
    unreadable = InboundRequest("POST", signed.query, signed.headers, b"not xml at all")
    assert _call(inbox, record.channel_id, unreadable)["statusCode"] == 400
    assert _call(inbox, "ch_unknown", WeChatUser("tok", "wx1", "o_3").text("hi"))["statusCode"] == 404
    directory.save(record.model_copy(update={"enabled": False}))
    assert _call(inbox, record.channel_id, WeChatUser("tok", "wx1", "o_3").text("hi"))["statusCode"] == 404
    assert desk.delivered == []


def test_a_message_not_taken_is_a_500_and_its_retry_is_taken(world: Any) -> None:
    inbox, directory, desk = world
    record = _oa(directory)
    user = WeChatUser("tok", "wx1", "o_4")
    desk.broken = True
    failed = _call(inbox, record.channel_id, user.text("第一次", msg_id=99))
    assert failed["statusCode"] == 500
    assert "Traceback" not in failed["body"]
    desk.broken = False
    assert _call(inbox, record.channel_id, user.text("第一次", msg_id=99))["statusCode"] == 200
    assert [m.platform_message_id for _, m in desk.delivered] == ["99"]


def test_a_base64_body_is_decoded_like_the_http_api_sends_it(world: Any) -> None:
    inbox, directory, desk = world
    record = _oa(directory)
    request = WeChatUser("tok", "wx1", "o_5").text("编码", msg_id=11)
    event = channel_request_event(record.channel_id, query=request.query, headers=request.headers)
    event.update(body=base64.b64encode(request.body).decode(), isBase64Encoded=True)
    assert channels.handler(event, lambda_context("kefu-channels"), inbox=inbox)["statusCode"] == 200
    assert [m.text for _, m in desk.delivered] == ["编码"]
