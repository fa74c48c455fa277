"""The agent console with a WeChat customer (issue 14), in Chromium against `python -m local.run` and
the fake WeChat server: the channel badge and the customer's platform id, an agent's reply delivered
through custom/send, and the "window closed" notice once WeChat's 48-hour window has passed."""

from __future__ import annotations

import re
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.support.fake_wechat_platforms import FakeWeChatServer, WeChatUser

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
APP_ID, APP_SECRET, TOKEN = "wx00aa11bb22cc33dd", "browser-app-secret", "browsertoken1"


def _wechat_texts(server: FakeWeChatServer, openid: str) -> list[str]:
    with server.lock:
        return [s["text"]["content"] for s in server.sent if s.get("touser") == openid]


def _until(found: Any, timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def test_a_wechat_customer_in_the_console(browser: Browser, stack: dict[str, Any], screenshot_dir: Path) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    with (
        FakeWeChatServer(APP_ID, APP_SECRET) as wechat,
        httpx.Client(base_url=stack["admin_url"], headers={"Authorization": f"Bearer {stack['admin_key']}"}) as admin,
    ):
        tenant_id = admin.post("/v1/tenants", json={"name": f"wechat shop {uuid.uuid4().hex[:6]}"}).json()["tenantId"]
        admin.patch(f"/v1/tenants/{tenant_id}/config", json={"handoff": {"autoAssign": False}}).raise_for_status()
        agent = admin.post(f"/v1/tenants/{tenant_id}/agents", json={"name": "Li Na"}).json()
        admin.put(f"/v1/tenants/{tenant_id}/secrets/oa", json={"value": APP_SECRET}).raise_for_status()
        fields = {"appId": APP_ID, "token": TOKEN, "appSecret": "oa", "apiBaseUrl": f"http://127.0.0.1:{wechat.port}"}
        channel = admin.post(f"/v1/tenants/{tenant_id}/channels", json={"kind": "wechat_oa", **fields}).json()

        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
        console = context.new_page()
        errors: list[str] = []
        console.on("pageerror", lambda error: errors.append(str(error)))
        console.goto(stack["console_url"])
        console.locator("#login-key").fill(agent["agentKey"])
        console.locator("#login-form button").click()
        expect(console.locator("#me-name")).to_have_text("Li Na")

        # A WeChat user asks for a person: the conversation waits in the queue with a WeChat badge.
        user = WeChatUser(TOKEN, APP_ID, f"o_{uuid.uuid4().hex[:12]}")
        wechat.user_wrote(user.openid)
        request = user.text("转人工")
        httpx.post(channel["webhookUrl"], params=request.query, content=request.body).raise_for_status()
        queued = console.locator("#queue li[data-conversation]")
        expect(queued).to_have_count(1)
        expect(queued.locator(".channel-badge")).to_have_text("WeChat")
        queued.click()
        expect(console.locator("#chat-title .channel-badge")).to_have_text("WeChat")
        expect(console.locator("#visitor-info")).to_contain_text(f"WeChat · {user.openid}")
        expect(console.locator("#channel-notice")).to_be_hidden()
        console.locator("#accept").click()
        expect(console.locator("#mine li[data-conversation]")).to_have_count(1)

        # The agent's reply reaches the user through WeChat's customer-service API.
        console.locator("#reply").fill("您好，我是李娜，请问有什么可以帮您？")
        console.locator("#reply").press("Enter")
        _until(lambda: "您好，我是李娜，请问有什么可以帮您？" in _wechat_texts(wechat, user.openid))
        expect(console.locator("#channel-notice")).to_be_hidden()

        # Two days later WeChat refuses: the console says the window has closed.
        wechat.clock_offset = 49 * 3600
        console.locator("#reply").fill("请问问题解决了吗？")
        console.locator("#reply").press("Enter")
        notice = console.locator("#channel-notice")
        expect(notice).to_be_visible()
        expect(notice).to_contain_text(re.compile("window closed", re.I))
        expect(console.locator("#transcript .m.event").last).to_contain_text(re.compile("45015|window", re.I))
        assert "请问问题解决了吗？" not in _wechat_texts(wechat, user.openid)
        console.screenshot(path=str(screenshot_dir / "console-wechat-window-closed.png"))
        assert errors == []
        context.close()
