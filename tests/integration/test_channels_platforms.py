"""The channel adapters against stand-ins of WeChat, WeCom and a company's app backend, over real
HTTP on loopback (tests/support/fake_wechat_platforms.py, fake_app_webhook.py), with the shared state
in the fake ChannelState (tests/integration/test_channels_state.py runs the DynamoDB adapter)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from shared.channels.base import (
    STAFF_ENDED_SESSION,
    InboundRequest,
    OutboundCitation,
    PullNotice,
    SessionStateRefused,
    SignatureInvalid,
    VisitorMessage,
    WindowClosed,
)
from shared.channels.dedupe import first_sighting
from shared.channels.webhook import DeliveryFailed, WebhookChannel, WebhookConfig, sign
from shared.channels.wechat_oa import WeChatOAChannel, WeChatOAConfig
from shared.channels.wecom_kf import SessionState, WeComKfChannel, WeComKfConfig
from tests.support.channel_state_fake import FakeChannelState
from tests.support.fake_app_webhook import FakeAppBackend
from tests.support.fake_wechat_platforms import FakeWeChatServer, FakeWeComServer, WeChatUser, WeComCallbacks

APP_ID, APP_SECRET, TOKEN = "wx0123456789abcdef", "app-secret", "oa-token"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aQ"
CORP_ID, CORP_SECRET, KF_TOKEN = "ww0123456789", "kf-secret", "kf-token"
KF_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"


@pytest.fixture
def wechat() -> Iterator[FakeWeChatServer]:
    with FakeWeChatServer(APP_ID, APP_SECRET) as server:
        yield server


@pytest.fixture
def wecom() -> Iterator[FakeWeComServer]:
    with FakeWeComServer(CORP_ID, CORP_SECRET) as server:
        yield server


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5) as client:
        yield client


def oa_channel(server: FakeWeChatServer, state: FakeChannelState, http: httpx.Client, safe: bool = False):
    config = WeChatOAConfig(APP_ID, TOKEN, APP_SECRET, AES_KEY if safe else None, f"http://127.0.0.1:{server.port}")
    return WeChatOAChannel("ch-oa", config, state, http)


def receive(channel: WeChatOAChannel, request: InboundRequest) -> list[VisitorMessage]:
    """What the channels function does with a request, minus storing and queueing."""
    channel.verify(request)
    assert channel.acknowledge(request).body == ("success" if request.method == "POST" else request.query["echostr"])
    messages = [m for m in channel.parse(request) if isinstance(m, VisitorMessage)]
    for message in messages:
        channel.customer_acted(message)
    return messages


# --- WeChat Official Account ---


def test_url_verification_echoes_and_a_bad_signature_is_refused(wechat: FakeWeChatServer, http: httpx.Client) -> None:
    channel = oa_channel(wechat, FakeChannelState(), http)
    user = WeChatUser(TOKEN, APP_ID, "o_user1")
    check = user.url_check("abc123")
    channel.verify(check)
    assert channel.acknowledge(check).body == "abc123"
    forged = WeChatUser("wrong-token", APP_ID, "o_user1").url_check()
    with pytest.raises(SignatureInvalid):
        channel.verify(forged)


def test_text_message_is_answered_through_custom_send_with_citations(
    wechat: FakeWeChatServer, http: httpx.Client
) -> None:
    channel = oa_channel(wechat, FakeChannelState(), http)
    user = WeChatUser(TOKEN, APP_ID, "o_user1")
    [message] = receive(channel, user.text("退款多久到账？", msg_id=1001))
    assert (message.customer_id, message.platform_message_id, message.text) == ("o_user1", "1001", "退款多久到账？")
    wechat.user_wrote("o_user1")

    report = channel.send("o_user1", "退款3到5个工作日到账。", [OutboundCitation("退款政策", "https://h.example/r")])
    assert report.complete and report.parts_sent == 1
    [sent] = wechat.sent
    assert sent["touser"] == "o_user1"
    assert sent["text"]["content"] == "退款3到5个工作日到账。\n\n参考：\n1. 《退款政策》 https://h.example/r"
    # The body went out as UTF-8 text, not \\u escapes (WeChat shows escapes literally).
    assert "退款" in wechat.requests[-1]["body"]
    assert channel.window("o_user1").remaining == 4
    channel.typing("o_user1")  # "typing…" while a slow answer is written; it costs no quota
    assert wechat.requests[-1]["path"] == "/cgi-bin/message/custom/typing"
    assert channel.window("o_user1").remaining == 4


def test_a_retried_msgid_is_seen_once(wechat: FakeWeChatServer, http: httpx.Client) -> None:
    state = FakeChannelState()
    channel = oa_channel(wechat, state, http)
    user = WeChatUser(TOKEN, APP_ID, "o_user1")
    now = time.time()
    firsts = []
    for delay in (0, 5, 10):  # WeChat's three tries of the same message, each with a fresh nonce
        [message] = receive(channel, user.text("在吗", msg_id=555, timestamp=now + delay))
        firsts.append(first_sighting(state, message))
    assert firsts == [True, False, False]
    [event] = receive(channel, user.event("subscribe", timestamp=now))
    [again] = receive(channel, user.event("subscribe", timestamp=now))
    assert first_sighting(state, event) and not first_sighting(state, again)  # FromUserName + CreateTime


def test_an_expired_token_is_refreshed_once_for_many_concurrent_sends(
    wechat: FakeWeChatServer, http: httpx.Client
) -> None:
    state = FakeChannelState()
    users = [f"o_user{i}" for i in range(16)]
    first = oa_channel(wechat, state, http)
    for openid in users:
        first.customer_acted(VisitorMessage("ch-oa", openid, f"m-{openid}", "hi", time.time()))
        wechat.user_wrote(openid)
    first.send(users[0], "第一条。")
    assert wechat.token_requests == 1
    wechat.expire_tokens()

    # Each thread is its own "container": its own channel object and HTTP client, one shared state.
    errors: list[Exception] = []

    def send(openid: str) -> None:
        with httpx.Client(timeout=10) as own_http:
            try:
                oa_channel(wechat, state, own_http).send(openid, "您好，已为您查询。")
            except Exception as exc:  # collected: a failure must fail the test, not vanish in a thread
                errors.append(exc)

    threads = [threading.Thread(target=send, args=(openid,)) for openid in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert wechat.token_requests == 2  # one refresh, whatever the number of senders
    assert len(wechat.sent) == 1 + len(users)


def test_safe_mode_message_is_verified_and_decrypted(wechat: FakeWeChatServer, http: httpx.Client) -> None:
    channel = oa_channel(wechat, FakeChannelState(), http, safe=True)
    user = WeChatUser(TOKEN, APP_ID, "o_safe", encoding_aes_key=AES_KEY)
    request = user.text("安全模式的问题", msg_id=77)
    assert b"\xe5\xae\x89" not in request.body  # the question is not in the clear
    [message] = receive(channel, request)
    assert (message.text, message.platform_message_id) == ("安全模式的问题", "77")

    tampered = InboundRequest(request.method, {**request.query, "msg_signature": "0" * 40}, {}, request.body)
    with pytest.raises(SignatureInvalid):
        channel.verify(tampered)
    plaintext = WeChatUser(TOKEN, APP_ID, "o_safe").text("明文")  # its signature does not cover the body
    with pytest.raises(SignatureInvalid, match="safe mode"):
        channel.verify(plaintext)
    other_account = WeChatUser(TOKEN, "wxOTHERACCOUNT00", "o_safe", encoding_aes_key=AES_KEY).text("x")
    channel.verify(other_account)  # signed with the shared token, but encrypted for another appid
    with pytest.raises(SignatureInvalid):
        channel.parse(other_account)


def test_a_stale_message_timestamp_is_refused(wechat: FakeWeChatServer, http: httpx.Client) -> None:
    channel = oa_channel(wechat, FakeChannelState(), http)
    with pytest.raises(SignatureInvalid, match="timestamp"):
        channel.verify(WeChatUser(TOKEN, APP_ID, "o_user1").text("hi", timestamp=time.time() - 3600))


def test_closed_windows_are_reported_and_remembered(wechat: FakeWeChatServer, http: httpx.Client) -> None:
    channel = oa_channel(wechat, FakeChannelState(), http)
    # kefu saw the message but the platform's window is gone (e.g. it was delivered late): 45015.
    receive(channel, WeChatUser(TOKEN, APP_ID, "o_late").text("hi"))
    with pytest.raises(WindowClosed, match="48-hour"):
        channel.send("o_late", "答复")
    state = channel.window("o_late")
    assert not state.open and "48-hour" in state.reason
    with pytest.raises(WindowClosed):  # kefu no longer calls the platform for this customer
        channel.send("o_late", "答复")
    assert wechat.sent == []

    # The platform's quota ends first (45047): kefu stops after the parts it could send.
    receive(channel, WeChatUser(TOKEN, APP_ID, "o_busy").text("hi"))
    wechat.user_wrote("o_busy")
    wechat.windows["o_busy"].left = 1
    report = channel.send("o_busy", "第一句。" * 600)  # 7,200 bytes: four messages
    assert (report.parts_sent, report.parts_total) == (1, 4)
    assert not channel.window("o_busy").open


def test_a_long_answer_goes_out_in_sentence_parts_within_the_quota(
    wechat: FakeWeChatServer, http: httpx.Client
) -> None:
    channel = oa_channel(wechat, FakeChannelState(), http)
    receive(channel, WeChatUser(TOKEN, APP_ID, "o_long").text("详细说说"))
    wechat.user_wrote("o_long")
    report = channel.send("o_long", "这是一句完整的话。" * 300)  # 8,100 bytes
    assert report.complete and report.parts_sent == 4
    assert all(len(s["text"]["content"].encode()) <= 2048 and s["text"]["content"].endswith("。") for s in wechat.sent)
    assert channel.window("o_long").remaining == 1


# --- WeChat Customer Service (WeCom) ---


def kf_channel(server: FakeWeComServer, state: FakeChannelState, http: httpx.Client) -> WeComKfChannel:
    config = WeComKfConfig(CORP_ID, KF_TOKEN, KF_AES_KEY, CORP_SECRET, f"http://127.0.0.1:{server.port}")
    return WeComKfChannel("ch-kf", config, state, http)


def pull(channel: WeComKfChannel, request: InboundRequest) -> list[VisitorMessage]:
    channel.verify(request)
    assert channel.acknowledge(request).body == "success"
    messages: list[VisitorMessage] = []
    for item in channel.parse(request):
        assert isinstance(item, PullNotice)
        messages.extend(channel.collect(item))
    for message in messages:
        channel.customer_acted(message)
    return messages


def test_wecom_url_verification_echoes_the_decrypted_echostr(wecom: FakeWeComServer, http: httpx.Client) -> None:
    channel = kf_channel(wecom, FakeChannelState(), http)
    check = WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID).url_check("plain-echo-9")
    channel.verify(check)
    assert channel.acknowledge(check).body == "plain-echo-9"
    with pytest.raises(SignatureInvalid):
        channel.verify(WeComCallbacks("other", KF_AES_KEY, CORP_ID).url_check())


def test_wecom_pulls_from_a_stored_cursor_and_answers(wecom: FakeWeComServer, http: httpx.Client) -> None:
    state = FakeChannelState()
    channel = kf_channel(wecom, state, http)
    callbacks = WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID)
    wecom.page_size = 2  # three messages: two pages
    wecom.customer_wrote("wk_kf1", "wm_alice", "你好")
    wecom.customer_wrote("wk_kf1", "wm_bob", "运费多少？")
    token = wecom.customer_wrote("wk_kf1", "wm_alice", "转人工")
    messages = pull(channel, callbacks.messages_waiting("wk_kf1", token))
    assert [(m.customer_id, m.text) for m in messages] == [
        ("wk_kf1/wm_alice", "你好"),
        ("wk_kf1/wm_bob", "运费多少？"),
        ("wk_kf1/wm_alice", "转人工"),
    ]
    assert len({m.platform_message_id for m in messages}) == 3

    report = channel.send("wk_kf1/wm_bob", "运费10元。", [OutboundCitation("运费说明")])
    assert report.complete and report.platform_ids[0].startswith("sent")
    assert wecom.sent[-1]["touser"] == "wm_bob" and wecom.sent[-1]["open_kfid"] == "wk_kf1"

    # Another callback (WeCom repeats them too): nothing is read twice, and our own send is skipped.
    token = wecom.customer_wrote("wk_kf1", "wm_bob", "谢谢")
    again = pull(channel, callbacks.messages_waiting("wk_kf1", token))
    assert [(m.customer_id, m.text) for m in again] == [("wk_kf1/wm_bob", "谢谢")]
    # A new container reads the same cursor from the shared state.
    assert pull(kf_channel(wecom, state, http), callbacks.messages_waiting("wk_kf1", token)) == []


def test_wecom_session_state_rules(wecom: FakeWeComServer, http: httpx.Client) -> None:
    channel = kf_channel(wecom, FakeChannelState(), http)
    token = wecom.customer_wrote("wk_kf1", "wm_carol", "人工")
    pull(channel, WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID).messages_waiting("wk_kf1", token))
    customer = "wk_kf1/wm_carol"
    assert channel.session_state(customer) == SessionState.UNTREATED
    channel.send(customer, "好的，正在为您转接。")
    assert channel.session_state(customer) == SessionState.SMART_ASSISTANT

    with pytest.raises(Exception, match="servicer_userid"):
        channel.transfer(customer, SessionState.HUMAN_IN_WECOM)
    channel.transfer(customer, SessionState.HUMAN_IN_WECOM, servicer_userid="zhangsan")
    assert channel.session_state(customer) == SessionState.HUMAN_IN_WECOM
    with pytest.raises(SessionStateRefused):  # 95018: a human in WeCom has the conversation now
        channel.send(customer, "机器人不该再说话")


def test_wecom_reads_a_session_its_staff_ended_and_a_media_message(wecom: FakeWeComServer, http: httpx.Client) -> None:
    channel = kf_channel(wecom, FakeChannelState(), http)
    callbacks = WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID)
    customer = "wk_kf1/wm_erin"
    token = wecom.customer_wrote("wk_kf1", "wm_erin", "转人工")
    pull(channel, callbacks.messages_waiting("wk_kf1", token))
    channel.transfer(customer, SessionState.HUMAN_IN_WECOM, servicer_userid="zhangsan")
    token = wecom.servicer_ended("wk_kf1", "wm_erin", "zhangsan")
    [ended] = pull(channel, callbacks.messages_waiting("wk_kf1", token))
    assert (ended.customer_id, ended.text, ended.msg_type, ended.opens_window) == (customer, "", "event", "none")
    assert ended.extra == {"event": STAFF_ENDED_SESSION, "open_kfid": "wk_kf1", "servicer": "zhangsan"}
    assert channel.session_state(customer) == SessionState.ENDED
    token = wecom.customer_wrote("wk_kf1", "wm_erin", "", msgtype="image")
    [image] = pull(channel, callbacks.messages_waiting("wk_kf1", token))
    assert (image.msg_type, image.text, image.opens_window) == ("image", "", "message")
    channel.customer_acted(image)
    assert channel.send(customer, "请用文字描述。").complete  # a new session: kefu may write again


def test_wecom_expired_token_is_refreshed_once(wecom: FakeWeComServer, http: httpx.Client) -> None:
    state = FakeChannelState()
    channel = kf_channel(wecom, state, http)
    token = wecom.customer_wrote("wk_kf1", "wm_dan", "hi")
    pull(channel, WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID).messages_waiting("wk_kf1", token))
    wecom.expire_tokens()
    channel.send("wk_kf1/wm_dan", "hello")
    assert wecom.token_requests == 2 and len(wecom.sent) == 1


def test_wecom_window_closes_after_48_hours(wecom: FakeWeComServer, http: httpx.Client) -> None:
    channel = kf_channel(wecom, FakeChannelState(), http)
    token = wecom.customer_wrote("wk_kf1", "wm_eve", "hi")
    pull(channel, WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID).messages_waiting("wk_kf1", token))
    wecom.clock_offset = 49 * 3600  # the platform's clock: its window has passed, kefu's not yet
    with pytest.raises(WindowClosed):
        channel.send("wk_kf1/wm_eve", "late answer")
    assert not channel.window("wk_kf1/wm_eve").open


# --- App webhook ---


def signed(body: bytes, secret: str = "hook-secret", timestamp: float | None = None) -> InboundRequest:
    stamp = str(int(time.time() if timestamp is None else timestamp))
    headers = {"x-kefu-timestamp": stamp, "x-kefu-signature": sign(secret, stamp, body)}
    return InboundRequest("POST", {}, headers, body)


def test_webhook_inbound_is_verified_and_answered_at_once(http: httpx.Client) -> None:
    with FakeAppBackend("hook-secret") as backend:
        channel = WebhookChannel(
            "ch-app", WebhookConfig("hook-secret", f"http://127.0.0.1:{backend.port}/kefu"), FakeChannelState(), http
        )
        body = b'{"conversation": "c1", "user": "u1", "text": "\xe4\xbd\xa0\xe5\xa5\xbd", "clientMessageId": "m1"}'
        request = signed(body)
        channel.verify(request)
        ack = channel.acknowledge(request)
        assert ack.status == 202 and '"clientMessageId": "m1"' in ack.body
        [message] = channel.parse(request)
        assert isinstance(message, VisitorMessage)
        assert (message.customer_id, message.text, message.conversation_hint) == ("u1", "你好", "c1")

        for bad in (signed(body, "wrong"), signed(body, timestamp=time.time() - 600)):
            with pytest.raises(SignatureInvalid):
                channel.verify(bad)


def test_webhook_deliveries_are_signed_retried_and_logged(http: httpx.Client) -> None:
    with FakeAppBackend("hook-secret") as backend:
        waits: list[float] = []
        config = WebhookConfig("hook-secret", f"http://127.0.0.1:{backend.port}/kefu", max_attempts=4)
        channel = WebhookChannel("ch-app", config, FakeChannelState(), http, sleep=waits.append)
        backend.fail_next = 2
        report = channel.send("u1", "答案。", [OutboundCitation("FAQ", "https://x.example/faq")])
        assert report.complete
        [delivered] = backend.accepted
        assert delivered["type"] == "answer" and delivered["text"] == "答案。"
        assert delivered["citations"] == [{"title": "FAQ", "url": "https://x.example/faq"}]
        assert waits == [0.5, 1.0] and backend.bad_signatures == 0
        [record] = channel.log.recent()
        assert (record.status, record.attempts) == ("delivered", 3)

        backend.fail_next, backend.fail_status = 10, 503
        with pytest.raises(DeliveryFailed):
            channel.deliver({"type": "status", "conversation": "c1", "status": "handoff.queued"})
        assert channel.log.recent()[-1].status == "failed" and channel.log.recent()[-1].http_status == 503

        backend.fail_next, backend.fail_status = 1, 400  # refused for good: no retry
        attempts_before = len(backend.requests)
        with pytest.raises(DeliveryFailed):
            channel.deliver({"type": "agent.message", "conversation": "c1", "text": "hi"})
        assert len(backend.requests) == attempts_before + 1
