"""The widget on a shop page and the agent console, in Chromium, against the whole local engine.

A visitor asks and watches the answer stream in with its citation, asks for a person; the console shows
the conversation queued, the agent accepts and replies; the visitor sees it and the bot stays silent;
the agent resolves; the visitor asks again and the bot answers; a reload restores the conversation.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, WebSocketRoute, expect

pytestmark = pytest.mark.browser

WIDGET = "#kefu-widget"
TIMEOUT_MS = 30_000


class HeldAnswerEnds:
    """Proxies the widget's WebSocket and holds back ``answer.end`` frames until released, so the test
    can look at an answer while it is still streaming. Records every frame from the server."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.held: list[str] = []
        self.holding = False
        self._page_side: WebSocketRoute | None = None

    def route(self, page_side: WebSocketRoute) -> None:
        server = page_side.connect_to_server()
        self._page_side = page_side
        page_side.on_message(lambda message: server.send(message))
        server.on_message(self._from_server)

    def _from_server(self, message: str | bytes) -> None:
        frame = json.loads(message)
        self.received.append(frame)
        if self.holding and frame["type"] == "answer.end":
            self.held.append(str(message))
            return
        assert self._page_side is not None
        self._page_side.send(message)

    def release(self) -> None:
        self.holding = False
        assert self._page_side is not None
        for message in self.held:
            self._page_side.send(message)
        self.held.clear()

    def types(self) -> list[str]:
        return [f["type"] for f in self.received]


def ask(page: Page, text: str) -> None:
    page.locator(f"{WIDGET} form.compose textarea").fill(text)
    page.locator(f"{WIDGET} form.compose textarea").press("Enter")


def log_in(console: Page, stack: dict[str, Any]) -> None:
    console.goto(stack["console_url"])
    console.locator("#login-key").fill(stack["agent_key"])
    console.locator("#login-form button").click()
    expect(console.locator("#me-name")).to_have_text(stack["agents"][0]["name"])


def test_visitor_bot_agent_and_back(browser: Browser, stack: dict[str, Any], screenshot_dir: Path) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    visitor_context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    agent_context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    visitor = visitor_context.new_page()
    errors: list[str] = []
    visitor.on("pageerror", lambda error: errors.append(str(error)))
    proxy = HeldAnswerEnds()
    visitor.route_web_socket(re.compile(r"^ws://"), proxy.route)

    # A visitor asks; the answer streams in (its end is held back) and then shows its source.
    visitor.goto(stack["demo_url"])
    visitor.locator(f"{WIDGET} .bubble").click()
    proxy.holding = True
    ask(visitor, "How long does delivery take?")
    streaming = visitor.locator(f"{WIDGET} .msg.bot.streaming")
    expect(streaming).to_contain_text("delivery")
    while not proxy.held:  # every delta is on screen before the end arrives
        visitor.wait_for_timeout(50)
    deltas = [f["text"] for f in proxy.received if f["type"] == "answer.delta"]
    assert len(deltas) >= 2
    expect(streaming.locator(".text")).to_have_text("".join(deltas))
    proxy.release()
    answer = visitor.locator(f"{WIDGET} .msg.bot").first
    expect(answer).not_to_have_class(re.compile("streaming"))
    source = answer.locator(".sources a").first
    expect(source).to_have_text(re.compile("Shipping", re.I))
    assert source.get_attribute("href", timeout=TIMEOUT_MS).startswith("http")  # type: ignore[union-attr]

    # The agent logs in (someone is on duty: the tenant lets agents pick from the queue themselves).
    with httpx.Client(base_url=stack["admin_url"], headers={"Authorization": f"Bearer {stack['admin_key']}"}) as admin:
        patch = {"handoff": {"autoAssign": False}}
        admin.patch(f"/v1/tenants/{stack['tenant_id']}/config", json=patch).raise_for_status()
    console = agent_context.new_page()
    console.on("pageerror", lambda error: errors.append(str(error)))
    log_in(console, stack)

    # The visitor asks for a person.
    visitor.locator(f"{WIDGET} .human").click()
    expect(visitor.locator(f"{WIDGET} .subtitle")).to_have_text("Waiting for a person…")
    expect(visitor.locator(f"{WIDGET} .notice").last).to_contain_text("Connecting you")
    expect(visitor.locator(f"{WIDGET} .human")).to_be_hidden()

    # The conversation waits in the queue, with the bot's answer and its source.
    queued = console.locator("#queue li[data-conversation]")
    expect(queued).to_have_count(1)
    expect(queued.locator(".wait")).to_have_text(re.compile(r"^\d+:\d\d$"))
    expect(console).to_have_title(re.compile(r"^\(1\) "))  # the tab says something waits
    queued.click()
    expect(console.locator("#transcript .m.bot .sources a")).to_have_text(re.compile("Shipping", re.I))
    expect(console.locator("#visitor-info")).to_contain_text("/demo")
    console.locator("#accept").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(1)
    expect(console.locator("#queue li[data-conversation]")).to_have_count(0)
    expect(console).not_to_have_title(re.compile(r"^\("))

    # A canned reply, then the agent's own words.
    console.locator("#canned").select_option(label="Greeting")
    expect(console.locator("#reply")).to_have_value(re.compile("this is Alice"))
    console.locator("#reply").press("Enter")
    agent_message = visitor.locator(f"{WIDGET} .msg.agent")
    expect(agent_message).to_have_count(1)
    expect(agent_message).to_contain_text("I'm looking into this for you now")
    expect(visitor.locator(f"{WIDGET} .subtitle")).to_have_text(re.compile("Alice"))

    # The visitor writes; the agent gets it, the bot stays silent.
    answers_before = visitor.locator(f"{WIDGET} .msg.bot").count()
    ask(visitor, "Thanks! My order number is 1042, it has not arrived.")
    expect(console.locator("#transcript .m.visitor").last).to_contain_text("1042")
    console.locator("#reply").fill("I see order 1042 left our warehouse yesterday; it arrives tomorrow.")
    console.locator("#reply").press("Enter")
    expect(agent_message).to_have_count(2)
    visitor.wait_for_timeout(2500)  # time enough for a bot answer, were one coming
    assert visitor.locator(f"{WIDGET} .msg.bot").count() == answers_before
    question = [f for f in proxy.received if f["type"] == "ack"][-1]
    assert not [f for f in proxy.received if f.get("messageId") == question["messageId"] + ".a"]
    expect(console.locator("#transcript .seen")).to_be_visible()  # the visitor read the agent's reply
    visitor.screenshot(path=str(screenshot_dir / "widget.png"))
    console.screenshot(path=str(screenshot_dir / "console.png"))

    # The agent resolves; the visitor's next question goes to the bot again.
    console.locator("#resolve").click()
    expect(visitor.locator(f"{WIDGET} .notice").last).to_contain_text("resolved")
    expect(console.locator("#mine li[data-conversation]")).to_have_count(0)
    ask(visitor, "How can I return an item?")
    expect(visitor.locator(f"{WIDGET} .msg.bot")).to_have_count(answers_before + 1)
    expect(visitor.locator(f"{WIDGET} .msg.bot").last.locator(".sources a")).to_have_text(re.compile("Return", re.I))
    expect(visitor.locator(f"{WIDGET} .subtitle")).to_have_text(re.compile("Assistant"))

    # A reload (a returning visitor) restores the whole conversation from the server.
    visitor.reload()
    expect(visitor.locator(f"{WIDGET} .panel")).to_be_visible()
    expect(visitor.locator(f"{WIDGET} .msg.agent")).to_have_count(2)
    expect(visitor.locator(f"{WIDGET} .msg.bot")).to_have_count(answers_before + 1)
    expect(visitor.locator(f"{WIDGET} .msg.visitor")).to_have_count(3)
    assert errors == []
    visitor_context.close()
    agent_context.close()


def test_chinese_pages_get_a_chinese_widget(browser: Browser, stack: dict[str, Any], screenshot_dir: Path) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
    page = context.new_page()
    proxy = HeldAnswerEnds()
    page.route_web_socket(re.compile(r"^ws://"), proxy.route)
    page.goto(stack["demo_url"] + "?lang=zh")
    bubble = page.locator(f"{WIDGET} .bubble")
    # An answer that ends while the panel is closed shows as an unread badge. Its end is held back
    # until the panel is closed, so a fast answer cannot beat the click.
    bubble.click()
    expect(page.locator(f"{WIDGET} form.compose textarea")).to_have_attribute("placeholder", "请输入您的问题…")
    expect(page.locator(f"{WIDGET} .human")).to_have_text("转人工")
    proxy.holding = True
    ask(page, "退款一般多久能到账？")
    while not proxy.held:
        page.wait_for_timeout(50)
    page.locator(f"{WIDGET} .close").click()
    expect(page.locator(f"{WIDGET} .badge")).to_be_hidden()
    proxy.release()
    expect(page.locator(f"{WIDGET} .badge")).to_have_text("1")
    bubble.click()
    expect(page.locator(f"{WIDGET} .badge")).to_be_hidden()
    expect(page.locator(f"{WIDGET} .msg.bot .sources-label")).to_have_text("参考来源")
    page.screenshot(path=str(screenshot_dir / "widget-zh.png"))
    context.close()


def test_with_nobody_on_duty_a_visitor_leaves_contact_details_and_an_agent_finds_them_later(
    browser: Browser, stack: dict[str, Any], screenshot_dir: Path
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    visitor_context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    visitor = visitor_context.new_page()
    errors: list[str] = []
    visitor.on("pageerror", lambda error: errors.append(str(error)))
    visitor.goto(stack["demo_url"])
    visitor.locator(f"{WIDGET} .bubble").click()

    # No agent has the console open: the visitor is told so and offered to leave a message.
    visitor.locator(f"{WIDGET} .human").click()
    expect(visitor.locator(f"{WIDGET} .notice").last).to_contain_text("no one from our team is available")
    form = visitor.locator(f"{WIDGET} form.leave")
    expect(form).to_be_visible()
    expect(visitor.locator(f"{WIDGET} .subtitle")).not_to_have_text("Waiting for a person…")
    form.locator("input[name=name]").fill("Wang Li")
    form.locator("input[name=contact]").fill("wangli@example.com")
    form.locator("textarea[name=text]").fill("Please call me back about a bulk order of chairs.")
    visitor.screenshot(path=str(screenshot_dir / "widget-leave-message.png"))
    form.locator("button").click()
    expect(visitor.locator(f"{WIDGET} .notice").last).to_contain_text("wangli@example.com")
    expect(form).to_have_count(0)

    # The bot keeps answering meanwhile.
    answers = visitor.locator(f"{WIDGET} .msg.bot")
    before = answers.count()
    ask(visitor, "How long does delivery take?")
    expect(answers).to_have_count(before + 1)
    expect(answers.last.locator(".sources a").first).to_have_text(re.compile("Shipping", re.I))

    # An agent who logs in later finds the message, opens it and closes it.
    agent_context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    console = agent_context.new_page()
    console.on("pageerror", lambda error: errors.append(str(error)))
    log_in(console, stack)
    tickets = console.locator("#tickets li[data-ticket]")
    mine = tickets.filter(has_text="wangli@example.com")
    expect(mine).to_have_count(1)
    expect(mine).to_contain_text("bulk order of chairs")
    mine.click()
    expect(console.locator("#visitor-info")).to_contain_text("wangli@example.com")
    expect(console.locator("#transcript .m.visitor").last).to_contain_text("How long does delivery take?")
    console.screenshot(path=str(screenshot_dir / "console-left-message.png"))
    console.locator("#close-ticket").click()
    expect(mine).to_have_count(0)
    expect(console.locator("#close-ticket")).to_be_hidden()
    assert errors == []
    visitor_context.close()
    agent_context.close()
