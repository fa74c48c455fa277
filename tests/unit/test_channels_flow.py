"""The channels function's use cases: one request in (verify, dedupe, deliver, acknowledge) and one
answer out (platform refusals as outcomes). The platform's HTTP API is an httpx MockTransport here;
tests/integration/test_channels_platforms.py runs the adapters against real-HTTP stand-ins."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from shared.channels.base import MalformedRequest, PullNotice, SignatureInvalid, VisitorMessage
from shared.channels.inbound import process_pull, receive
from shared.channels.outbound import send_answer
from shared.channels.wechat_oa import WeChatOAChannel, WeChatOAConfig
from shared.channels.wecom_kf import WeComKfChannel, WeComKfConfig
from tests.support.channel_state_fake import FakeChannelState
from tests.support.fake_wechat_platforms import WeChatUser, WeComCallbacks

AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"


def platform(responses: dict[str, list[dict[str, object]]]) -> tuple[httpx.Client, list[httpx.Request]]:
    """An httpx client whose every call answers the next scripted JSON for its path."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        queue = responses[request.url.path]
        return httpx.Response(200, json=queue.pop(0) if len(queue) > 1 else queue[0])

    return httpx.Client(transport=httpx.MockTransport(handle)), seen


def _no_calls(request: httpx.Request) -> httpx.Response:
    raise AssertionError(f"unexpected platform call: {request.url}")


def oa(state: FakeChannelState, http: httpx.Client | None = None) -> WeChatOAChannel:
    config = WeChatOAConfig("wx1", "tok", "secret", None, "https://wechat.test")
    return WeChatOAChannel("ch-oa", config, state, http or httpx.Client(transport=httpx.MockTransport(_no_calls)))


def test_a_message_is_delivered_once_and_acknowledged_at_once() -> None:
    state = FakeChannelState()
    channel = oa(state)
    delivered: list[VisitorMessage] = []
    user = WeChatUser("tok", "wx1", "o_1")
    request = user.text("你好", msg_id=42)
    first = receive(channel, request, state, delivered.append, lambda notice: None)
    retry = receive(channel, user.text("你好", msg_id=42), state, delivered.append, lambda notice: None)
    assert first.ack.body == retry.ack.body == "success"
    assert [m.platform_message_id for m in delivered] == ["42"]
    assert len(retry.duplicates) == 1
    assert channel.window("o_1").open  # the message opened the customer's window


def test_a_failed_delivery_is_not_remembered_so_the_retry_is_taken() -> None:
    state = FakeChannelState()
    channel = oa(state)
    user = WeChatUser("tok", "wx1", "o_1")

    def broken(message: VisitorMessage) -> None:
        raise RuntimeError("table unavailable")

    with pytest.raises(RuntimeError):
        receive(channel, user.text("你好", msg_id=43), state, broken, lambda notice: None)
    assert channel.window("o_1").open  # the customer wrote: the platform opened the window either way
    delivered: list[VisitorMessage] = []
    receive(channel, user.text("你好", msg_id=43), state, delivered.append, lambda notice: None)
    assert len(delivered) == 1


def test_forged_or_unreadable_requests_store_nothing() -> None:
    state = FakeChannelState()
    channel = oa(state)
    delivered: list[VisitorMessage] = []
    with pytest.raises(SignatureInvalid):
        receive(channel, WeChatUser("wrong", "wx1", "o_1").text("hi"), state, delivered.append, lambda n: None)
    request = WeChatUser("tok", "wx1", "o_1").text("hi")
    broken = type(request)(request.method, request.query, request.headers, b"<xml><oops")
    with pytest.raises(MalformedRequest):
        receive(channel, broken, state, delivered.append, lambda n: None)
    assert delivered == [] and state.get("chan:seen:ch-oa:o_1:1") is None


def test_wecom_callback_queues_a_pull_and_the_job_takes_each_message_once() -> None:
    state = FakeChannelState()
    page = {
        "errcode": 0,
        "next_cursor": "c2",
        "has_more": 0,
        "msg_list": [
            {"msgid": "m1", "external_userid": "wm_a", "origin": 3, "msgtype": "text", "text": {"content": "在吗"}},
            {"msgid": "m2", "external_userid": "wm_a", "origin": 5, "msgtype": "text", "text": {"content": "bot"}},
        ],
    }
    http, seen = platform(
        {"/cgi-bin/gettoken": [{"errcode": 0, "access_token": "T", "expires_in": 7200}], "/cgi-bin/kf/sync_msg": [page]}
    )
    channel = WeComKfChannel("ch-kf", WeComKfConfig("ww1", "tok", AES_KEY, "s", "https://wecom.test"), state, http)
    pulls: list[PullNotice] = []
    outcome = receive(
        channel,
        WeComCallbacks("tok", AES_KEY, "ww1").messages_waiting("kf1", "CB1"),
        state,
        lambda m: None,
        pulls.append,
    )
    assert outcome.ack.body == "success" and [p.open_kfid for p in pulls] == ["kf1"]
    delivered: list[VisitorMessage] = []
    assert [m.text for m in process_pull(channel, pulls[0], state, delivered.append).delivered] == ["在吗"]
    assert process_pull(channel, pulls[0], state, delivered.append).duplicates[0].platform_message_id == "m1"
    sync_bodies = [json.loads(r.content) for r in seen if r.url.path.endswith("sync_msg")]
    assert [b["cursor"] for b in sync_bodies] == ["", "c2"]  # the second pull starts from the stored cursor
    assert len(delivered) == 1


def test_platform_refusals_become_outcomes_for_the_console() -> None:
    state = FakeChannelState()
    http, _ = platform(
        {
            "/cgi-bin/token": [{"access_token": "T", "expires_in": 7200}],
            "/cgi-bin/message/custom/send": [
                {"errcode": 0},
                {"errcode": 45047, "errmsg": "out of response count limit"},
            ],
        }
    )
    channel = oa(state, http)
    channel.customer_acted(VisitorMessage("ch-oa", "o_1", "m", "hi", time.time()))
    assert send_answer(channel, "o_1", "第一句。").status == "sent"
    outcome = send_answer(channel, "o_1", "第二句。")
    assert outcome.status == "window_closed" and "quota" in outcome.reason and not outcome.window.open
    never = send_answer(channel, "o_nobody", "hi")
    assert never.status == "window_closed" and "not written" in never.reason


def test_a_message_arriving_during_another_pull_is_pulled_by_the_lock_holder() -> None:
    state = FakeChannelState()
    waiting = [{"msgid": "m1", "external_userid": "wm_a", "origin": 3, "msgtype": "text", "text": {"content": "一"}}]
    read = 0
    channel: WeComKfChannel

    def handle(request: httpx.Request) -> httpx.Response:
        nonlocal read
        if request.url.path.endswith("gettoken"):
            return httpx.Response(200, json={"errcode": 0, "access_token": "T", "expires_in": 7200})
        page = waiting[read:]
        read = len(waiting)
        if page and page[0]["msgid"] == "m1":
            # While this job pulls, the customer writes again and WeCom calls back: the second job
            # finds the lock taken and must not lose the message.
            waiting.append(
                {"msgid": "m2", "external_userid": "wm_a", "origin": 3, "msgtype": "text", "text": {"content": "二"}}
            )
            assert channel.collect(PullNotice("ch-kf", "kf1", "CB2")) == []
        return httpx.Response(200, json={"errcode": 0, "next_cursor": str(read), "has_more": 0, "msg_list": page})

    http = httpx.Client(transport=httpx.MockTransport(handle))
    channel = WeComKfChannel("ch-kf", WeComKfConfig("ww1", "tok", AES_KEY, "s", "https://wecom.test"), state, http)
    pulled = channel.collect(PullNotice("ch-kf", "kf1", "CB1"))
    assert [m.text for m in pulled] == ["一", "二"]
    assert state.get("chan:pull-lock:ch-kf:kf1") is None and state.get("chan:pull-again:ch-kf:kf1") is None
