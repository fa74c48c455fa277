"""Channels end to end through `make run`'s stack: stand-ins of WeChat, WeCom and a company's app
backend (tests/support, real HTTP on loopback, reached through each channel's ``apiBaseUrl`` or
``deliveryUrl``) post signed requests to the channel's ``webhookUrl``; the channels function, the
visitor intake, the generate queue and function, and the agent console's WebSocket do the rest.

Each test module run gets its own tenant, knowledge and agent."""

from __future__ import annotations

import asyncio
import functools
import itertools
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from shared.channels.base import InboundRequest
from shared.channels.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.e2e.client import LocalStackInfo, connect_agent, receive
from tests.support.fake_app_webhook import FakeAppBackend
from tests.support.fake_wechat_platforms import FakeWeChatServer, FakeWeComServer, WeChatUser, WeComCallbacks

pytestmark = pytest.mark.e2e

APP_ID, APP_SECRET, OA_TOKEN = "wx0123456789abcdef", "oa-app-secret", "oatoken42"
AES_KEY = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aQ"
CORP_ID, CORP_SECRET, KF_TOKEN = "ww0123456789", "kf-corp-secret", "kftoken42"
KF_AES_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
APP_WEBHOOK_SECRET = "app-shared-secret-123"
DOCS = [
    {
        "id": "shipping",
        "title": "Shipping times",
        "text": "Shipping takes 2 to 4 working days: orders leave our warehouse within 24 hours.",
        "url": "https://shop.example/help/shipping",
    },
    {"id": "returns", "title": "退货政策", "text": "收到商品后30天内可以无理由退货，退款3个工作日内到账。"},
]
QUESTION = "How long does shipping take?"
# WeChat's MsgIds are unique per account (WeChatUser's own counter starts at the same value per user).
MSG_IDS = itertools.count(int(time.time() * 1000))


@dataclass
class Shop:
    stack: LocalStackInfo
    tenant_id: str
    agent_key: str

    def admin(self) -> httpx.Client:
        return self.stack.admin()

    def channel(self, kind: str, fields: dict[str, Any], secrets: dict[str, str]) -> dict[str, Any]:
        with self.admin() as admin:
            for name, value in secrets.items():
                admin.put(f"/v1/tenants/{self.tenant_id}/secrets/{name}", json={"value": value}).raise_for_status()
            created = admin.post(f"/v1/tenants/{self.tenant_id}/channels", json={"kind": kind, **fields})
            assert created.status_code == 201, created.text
            return dict(created.json())

    def transcript(self, conversation_id: str) -> dict[str, Any]:
        with self.admin() as admin:
            response = admin.get(f"/v1/tenants/{self.tenant_id}/conversations/{conversation_id}/messages")
            response.raise_for_status()
            return dict(response.json())


@pytest.fixture(scope="module")
def shop(local_stack: LocalStackInfo) -> Shop:
    with local_stack.admin() as admin:
        tenant = admin.post("/v1/tenants", json={"name": f"channels {uuid.uuid4().hex[:6]}"}).json()
        tenant_id = tenant["tenantId"]
        admin.post(f"/v1/tenants/{tenant_id}/knowledge", json={"documents": DOCS}).raise_for_status()
        admin.patch(f"/v1/tenants/{tenant_id}/config", json={"handoff": {"autoAssign": False}}).raise_for_status()
        agent = admin.post(f"/v1/tenants/{tenant_id}/agents", json={"name": "Alice"}).json()
    return Shop(local_stack, tenant_id, agent["agentKey"])


@pytest.fixture(scope="module")
def wechat() -> Iterator[FakeWeChatServer]:
    with FakeWeChatServer(APP_ID, APP_SECRET) as server:
        yield server


@pytest.fixture(scope="module")
def oa(shop: Shop, wechat: FakeWeChatServer) -> dict[str, Any]:
    fields = {"appId": APP_ID, "token": OA_TOKEN, "appSecret": "oa-secret", "apiBaseUrl": _url(wechat)}
    return shop.channel("wechat_oa", fields, {"oa-secret": APP_SECRET})


def _url(server: Any) -> str:
    return f"http://127.0.0.1:{server.port}"


def post(url: str, request: InboundRequest) -> httpx.Response:
    """What the platform does with a request it built: send it to the channel's webhookUrl."""
    return httpx.request(
        request.method, url, params=request.query, headers=request.headers, content=request.body, timeout=30
    )


def wait_for(found: Callable[[], Any], timeout: float = 60, what: str = "the platform to receive it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def sent_to(server: FakeWeChatServer | FakeWeComServer, customer: str) -> list[str]:
    with server.lock:
        return [s["text"]["content"] for s in server.sent if s.get("touser") == customer]


def test_a_wechat_user_is_verified_answered_with_citations_and_a_retry_is_answered_once(
    wechat: FakeWeChatServer, oa: dict[str, Any]
) -> None:
    user = WeChatUser(OA_TOKEN, APP_ID, f"o_{uuid.uuid4().hex[:12]}")
    check = post(oa["webhookUrl"], user.url_check("echo-e2e-1"))
    assert (check.status_code, check.text) == (200, "echo-e2e-1")
    forged = post(oa["webhookUrl"], WeChatUser("wrongtoken", APP_ID, user.openid).text(QUESTION))
    assert forged.status_code == 401

    wechat.user_wrote(user.openid)
    message = user.text(QUESTION, msg_id=next(MSG_IDS))
    started = time.monotonic()
    first = post(oa["webhookUrl"], message)
    acknowledged_in = time.monotonic() - started
    assert (first.status_code, first.text) == (200, "success")
    assert acknowledged_in < 5  # WeChat's deadline: the answer comes later, through custom/send
    [answer] = wait_for(lambda: sent_to(wechat, user.openid))
    assert "2 to 4" in answer and "Shipping times" in answer and "https://shop.example/help/shipping" in answer

    for _ in range(3):  # WeChat retries a message it thinks was not taken, with the same MsgId
        retry = post(oa["webhookUrl"], message)
        assert (retry.status_code, retry.text) == (200, "success")
    time.sleep(3)
    assert len(sent_to(wechat, user.openid)) == 1


def test_an_expired_token_is_refreshed_once_for_many_concurrent_answers(
    wechat: FakeWeChatServer, oa: dict[str, Any]
) -> None:
    warm = WeChatUser(OA_TOKEN, APP_ID, f"o_{uuid.uuid4().hex[:12]}")
    wechat.user_wrote(warm.openid)
    post(oa["webhookUrl"], warm.text(QUESTION, msg_id=next(MSG_IDS))).raise_for_status()
    wait_for(lambda: sent_to(wechat, warm.openid))  # a token is cached now
    wechat.expire_tokens()
    before = wechat.token_requests
    users = [WeChatUser(OA_TOKEN, APP_ID, f"o_{uuid.uuid4().hex[:12]}") for _ in range(6)]
    for user in users:
        wechat.user_wrote(user.openid)
    requests = [user.text(QUESTION, msg_id=next(MSG_IDS)) for user in users]
    statuses: list[int] = []

    def platform_posts(request: InboundRequest) -> None:
        statuses.append(post(oa["webhookUrl"], request).status_code)

    threads = [threading.Thread(target=platform_posts, args=(request,)) for request in requests]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(users)
    for user in users:
        wait_for(functools.partial(sent_to, wechat, user.openid), what=f"the answer to {user.openid}")
    assert wechat.token_requests - before == 1


def test_a_safe_mode_message_is_verified_decrypted_and_answered(shop: Shop, wechat: FakeWeChatServer) -> None:
    fields = {
        "appId": APP_ID,
        "token": OA_TOKEN,
        "appSecret": "oa-secret",
        "encodingAesKey": "oa-aes",
        "apiBaseUrl": _url(wechat),
    }
    channel = shop.channel("wechat_oa", fields, {"oa-secret": APP_SECRET, "oa-aes": AES_KEY})
    user = WeChatUser(OA_TOKEN, APP_ID, f"o_{uuid.uuid4().hex[:12]}", encoding_aes_key=AES_KEY)
    plaintext = WeChatUser(OA_TOKEN, APP_ID, user.openid).text(QUESTION)
    assert post(channel["webhookUrl"], plaintext).status_code == 401  # safe mode refuses plaintext bodies
    wechat.user_wrote(user.openid)
    response = post(channel["webhookUrl"], user.text("退货多久退款？", msg_id=next(MSG_IDS)))
    assert (response.status_code, response.text) == (200, "success")
    [answer] = wait_for(lambda: sent_to(wechat, user.openid))
    assert "退款" in answer and "退货政策" in answer


def test_an_image_is_answered_honestly_that_kefu_reads_text(wechat: FakeWeChatServer, oa: dict[str, Any]) -> None:
    user = WeChatUser(OA_TOKEN, APP_ID, f"o_{uuid.uuid4().hex[:12]}")
    wechat.user_wrote(user.openid)
    image: dict[str, str | int] = {
        "ToUserName": "gh_account",
        "FromUserName": user.openid,
        "CreateTime": int(time.time()),
        "MsgType": "image",
        "PicUrl": "http://mmbiz.example/pic.jpg",
        "MediaId": "media-1",
        "MsgId": next(MSG_IDS),
    }
    response = post(oa["webhookUrl"], user.post(image))
    assert (response.status_code, response.text) == (200, "success")
    [told] = wait_for(lambda: sent_to(wechat, user.openid), what="the reply about the image")
    assert "文字" in told and "转人工" in told  # in Chinese: type the question, or ask for a person


def test_a_handoff_is_answered_by_an_agent_through_wechat_and_a_closed_window_is_reported(
    shop: Shop, wechat: FakeWeChatServer, oa: dict[str, Any]
) -> None:
    user = WeChatUser(OA_TOKEN, APP_ID, f"o_{uuid.uuid4().hex[:12]}")

    async def scenario() -> dict[str, Any]:
        async with await connect_agent(shop.stack.ws_url, shop.agent_key) as alice:
            await alice.send(json.dumps({"action": "agentSync"}))
            await _until(alice, lambda f: f["type"] == "agent.state")
            wechat.user_wrote(user.openid)
            assert post(oa["webhookUrl"], user.text("转人工", msg_id=next(MSG_IDS))).status_code == 200
            queued = await _until(alice, lambda f: f["type"] == "queue.updated" and bool(f.get("added")))
            [summary] = queued[-1]["added"]
            conversation_id = summary["conversationId"]
            await alice.send(json.dumps({"action": "accept", "conversationId": conversation_id}))
            await _until(alice, lambda f: f["type"] == "conversation.assigned")
            reply = {"action": "agentMessage", "conversationId": conversation_id, "text": "您好，我是客服小李。"}
            await alice.send(json.dumps({**reply, "clientMessageId": "agent-e2e-0001"}))
            await _until(alice, lambda f: f["type"] == "ack")
            wait_for(lambda: "您好，我是客服小李。" in sent_to(wechat, user.openid))
            wechat.clock_offset = 49 * 3600  # two days later: the 48-hour window has closed
            try:
                late = {**reply, "text": "请问还需要帮助吗？", "clientMessageId": "agent-e2e-0002"}
                await alice.send(json.dumps(late))
                await _until(alice, lambda f: f["type"] == "ack")
                notice = wait_for(
                    lambda: shop.transcript(conversation_id).get("channelNotice"), what="the closed window's record"
                )
            finally:
                wechat.clock_offset = 0
            return {"summary": summary, "notice": notice, "conversation_id": conversation_id}

    seen = asyncio.run(scenario())
    channel = seen["summary"]["visitor"]["channel"]  # what the console's badge shows
    assert (channel["kind"], channel["customerId"]) == ("wechat_oa", user.openid)
    texts = sent_to(wechat, user.openid)
    assert any("人工" in text for text in texts[:-1])  # the handoff notice went out in the user's language
    assert "请问还需要帮助吗？" not in texts
    assert seen["notice"]["status"] == "window_closed"
    events = [m["event"] for m in shop.transcript(seen["conversation_id"])["messages"] if m["role"] == "event"]
    assert "channel_window_closed" in events


async def _until(ws: Any, done: Callable[[dict[str, Any]], bool], timeout: float = 30) -> list[dict[str, Any]]:
    frames: list[dict[str, Any]] = []
    while not frames or not done(frames[-1]):
        frames.append(await receive(ws, timeout))
    return frames


def _post_signed(url: str, message: dict[str, Any]) -> httpx.Response:
    """An app's message to its webhook channel, signed as the app signs it."""
    body = json.dumps(message).encode()
    timestamp = str(int(time.time()))
    headers = {
        "content-type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(APP_WEBHOOK_SECRET, timestamp, body),
    }
    return httpx.post(url, content=body, headers=headers, timeout=30)


def test_an_app_user_through_the_webhook_channel(shop: Shop) -> None:
    with FakeAppBackend(APP_WEBHOOK_SECRET) as backend:
        fields = {"deliveryUrl": f"{_url(backend)}/kefu-events", "secret": "app-secret"}
        channel = shop.channel("webhook", fields, {"app-secret": APP_WEBHOOK_SECRET})
        message = {
            "conversation": "app-conv-1",
            "user": "app-user-7",
            "text": QUESTION,
            "clientMessageId": "app-msg-0001",
        }
        accepted = _post_signed(channel["webhookUrl"], message)
        assert accepted.status_code == 202 and accepted.json()["clientMessageId"] == "app-msg-0001"
        body = json.dumps(message).encode()
        unsigned = httpx.post(channel["webhookUrl"], content=body, headers={"content-type": "application/json"})
        assert unsigned.status_code == 401
        [event] = wait_for(lambda: list(backend.accepted), what="the signed delivery")
    assert (event["type"], event["user"], event["conversation"]) == ("answer", "app-user-7", "app-conv-1")
    assert "2 to 4" in event["text"] and event["citations"][0]["url"] == "https://shop.example/help/shipping"
    assert backend.bad_signatures == 0


def test_a_wecom_customer_is_pulled_with_sync_msg_and_answered(shop: Shop) -> None:
    with FakeWeComServer(CORP_ID, CORP_SECRET) as wecom:
        fields = {
            "corpId": CORP_ID,
            "token": KF_TOKEN,
            "encodingAesKey": "kf-aes",
            "corpSecret": "kf-secret",
            "apiBaseUrl": _url(wecom),
        }
        channel = shop.channel("wecom_kf", fields, {"kf-aes": KF_AES_KEY, "kf-secret": CORP_SECRET})
        callbacks = WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID)
        check = post(channel["webhookUrl"], callbacks.url_check("wecom-echo-e2e"))
        assert (check.status_code, check.text) == (200, "wecom-echo-e2e")
        token = wecom.customer_wrote("wkKF001", "wm_customer_1", QUESTION)
        notice = post(channel["webhookUrl"], callbacks.messages_waiting("wkKF001", token))
        assert (notice.status_code, notice.text) == (200, "success")
        [answer] = wait_for(lambda: sent_to(wecom, "wm_customer_1"))
        again = post(channel["webhookUrl"], callbacks.messages_waiting("wkKF001", token))  # a retried callback
        assert again.status_code == 200
        time.sleep(3)
        assert len(sent_to(wecom, "wm_customer_1")) == 1
    assert "2 to 4" in answer and "Shipping times" in answer


def test_a_wecom_channel_hands_off_to_its_own_reception_staff(shop: Shop) -> None:
    with FakeWeComServer(CORP_ID, CORP_SECRET) as wecom:
        fields = {
            "corpId": CORP_ID,
            "token": KF_TOKEN,
            "encodingAesKey": "kf-aes",
            "corpSecret": "kf-secret",
            "apiBaseUrl": _url(wecom),
            "handoffToWecomServicer": "zhangsan",
        }
        channel = shop.channel("wecom_kf", fields, {"kf-aes": KF_AES_KEY, "kf-secret": CORP_SECRET})
        callbacks = WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID)

        async def scenario() -> list[dict[str, Any]]:
            async with await connect_agent(shop.stack.ws_url, shop.agent_key) as alice:
                await alice.send(json.dumps({"action": "agentSync"}))
                await _until(alice, lambda f: f["type"] == "agent.state")
                token = wecom.customer_wrote("wkKF002", "wm_customer_2", "转人工")
                assert post(channel["webhookUrl"], callbacks.messages_waiting("wkKF002", token)).status_code == 200
                await _until(alice, lambda f: f["type"] == "queue.updated" and bool(f.get("added")), timeout=60)
                wait_for(lambda: wecom.states.get("wkKF002/wm_customer_2") == 3, what="the session moved to WeCom")
                await alice.send(json.dumps({"action": "agentSync"}))
                frames = await _until(alice, lambda f: f["type"] == "agent.state")
                return list(frames[-1]["queue"])

        queue = asyncio.run(scenario())
        time.sleep(1)
        # WeCom's staff answer now: kefu's "queued" notice was refused (95018), not delivered.
        assert sent_to(wecom, "wm_customer_2") == []
        [waiting] = [c for c in queue if c["visitor"].get("channel", {}).get("customerId") == "wkKF002/wm_customer_2"]
        assert waiting["visitor"]["channel"]["kind"] == "wecom_kf"
        notice = waiting["visitor"]["channelNotice"]
        assert notice["status"] == "session_elsewhere" and "zhangsan" in notice["reason"]

        # zhangsan ends the session in WeCom: kefu's bot has the conversation again and answers.
        token = wecom.servicer_ended("wkKF002", "wm_customer_2", "zhangsan")
        assert post(channel["webhookUrl"], callbacks.messages_waiting("wkKF002", token)).status_code == 200
        conversation_id = waiting["conversationId"]
        wait_for(lambda: shop.transcript(conversation_id)["status"] == "bot", what="the conversation back with the bot")
        assert shop.transcript(conversation_id).get("channelNotice") is None
        token = wecom.customer_wrote("wkKF002", "wm_customer_2", QUESTION)
        assert post(channel["webhookUrl"], callbacks.messages_waiting("wkKF002", token)).status_code == 200
        [answer] = wait_for(lambda: sent_to(wecom, "wm_customer_2"), what="the bot's answer after the session ended")
    assert "2 to 4" in answer


async def _agent_answers_a_handoff(
    shop: Shop, customer_asks: Callable[[], None], customer: str, text: str, client_message_id: str
) -> dict[str, Any]:
    """Alice is on the console when ``customer_asks`` for a person: she accepts the conversation whose
    visitor is ``customer`` and answers it with ``text``; returns the queue summary she saw."""
    async with await connect_agent(shop.stack.ws_url, shop.agent_key) as alice:
        await alice.send(json.dumps({"action": "agentSync"}))
        await _until(alice, lambda f: f["type"] == "agent.state")
        customer_asks()

        def added_for_customer(frame: dict[str, Any]) -> bool:
            return frame["type"] == "queue.updated" and any(
                a.get("visitor", {}).get("channel", {}).get("customerId") == customer for a in frame.get("added") or []
            )

        queued = await _until(alice, added_for_customer, timeout=60)
        [summary] = [
            a for a in queued[-1]["added"] if a.get("visitor", {}).get("channel", {}).get("customerId") == customer
        ]
        conversation_id = summary["conversationId"]
        await alice.send(json.dumps({"action": "accept", "conversationId": conversation_id}))
        await _until(alice, lambda f: f["type"] == "conversation.assigned")
        reply = {"action": "agentMessage", "conversationId": conversation_id, "text": text}
        await alice.send(json.dumps({**reply, "clientMessageId": client_message_id}))
        await _until(alice, lambda f: f["type"] == "ack")
        return dict(summary)


def test_a_wecom_customer_who_asks_for_a_person_is_answered_by_a_kefu_agent(shop: Shop) -> None:
    with FakeWeComServer(CORP_ID, CORP_SECRET) as wecom:
        fields = {
            "corpId": CORP_ID,
            "token": KF_TOKEN,
            "encodingAesKey": "kf-aes",
            "corpSecret": "kf-secret",
            "apiBaseUrl": _url(wecom),
        }  # no handoffToWecomServicer: kefu's own agents answer
        channel = shop.channel("wecom_kf", fields, {"kf-aes": KF_AES_KEY, "kf-secret": CORP_SECRET})
        callbacks = WeComCallbacks(KF_TOKEN, KF_AES_KEY, CORP_ID)
        customer = "wm_customer_3"

        def customer_asks() -> None:
            token = wecom.customer_wrote("wkKF003", customer, "转人工")
            notice = post(channel["webhookUrl"], callbacks.messages_waiting("wkKF003", token))
            assert (notice.status_code, notice.text) == (200, "success")

        reply = "您好，我是企业微信客服小王。"
        summary = asyncio.run(
            _agent_answers_a_handoff(shop, customer_asks, f"wkKF003/{customer}", reply, "agent-e2e-wecom-0001")
        )
        wait_for(lambda: reply in sent_to(wecom, customer), what="the agent's reply through send_msg")
        with wecom.lock:
            [sent] = [s for s in wecom.sent if s.get("touser") == customer and s["text"]["content"] == reply]
            state = wecom.states.get(f"wkKF003/{customer}")
        texts = sent_to(wecom, customer)
    assert (summary["visitor"]["channel"]["kind"], sent["open_kfid"]) == ("wecom_kf", "wkKF003")
    assert state == 1  # kefu's API still holds the session: nobody moved it to a WeCom servicer
    assert any("人工" in text for text in texts[: texts.index(reply)])  # the handoff notice came first, in Chinese


def test_an_app_user_who_asks_for_a_person_gets_the_agents_reply_as_a_signed_delivery(shop: Shop) -> None:
    with FakeAppBackend(APP_WEBHOOK_SECRET) as backend:
        fields = {"deliveryUrl": f"{_url(backend)}/kefu-events", "secret": "app-secret"}
        channel = shop.channel("webhook", fields, {"app-secret": APP_WEBHOOK_SECRET})

        def customer_asks() -> None:
            message = {
                "conversation": "app-conv-2",
                "user": "app-user-8",
                "text": "I want to talk to a human",
                "clientMessageId": "app-msg-0002",
            }
            accepted = _post_signed(channel["webhookUrl"], message)
            assert accepted.status_code == 202, accepted.text

        reply = "Hi, this is Alice from the shop. How can I help?"
        summary = asyncio.run(_agent_answers_a_handoff(shop, customer_asks, "app-user-8", reply, "agent-e2e-app-0001"))

        def agent_messages() -> list[dict[str, Any]]:
            return [e for e in list(backend.accepted) if e.get("type") == "agent_message"]

        [event] = wait_for(agent_messages, what="the agent's signed delivery")
        kinds = [e.get("type") for e in list(backend.accepted)]
    assert summary["visitor"]["channel"]["kind"] == "webhook"
    assert (event["text"], event["user"], event["conversation"]) == (reply, "app-user-8", "app-conv-2")
    assert "answer" not in kinds  # the bot did not answer the request for a person
    assert backend.bad_signatures == 0
