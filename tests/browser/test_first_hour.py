"""A new user's first hour, in Chromium against `python -m local.run` (issue 13, "The first hour").

- The widget opens its WebSocket when the chat is opened (or a handoff waits), not on every page view,
  and does not reconnect an idle chat after the socket closes.
- A wrong widget key says the configuration is wrong (and stops retrying); a network failure still
  says "Reconnecting…".
- After a reload the widget shows the handoff notice again; the chat page restores its conversation.
- The console's open transcript follows a conversation handed back to the bot, live while the bot
  answers and when it is queued again; the chat page's visitors have a language.
- The demo shop fits a 390 px phone and its chat bubble can be tapped; every page has a favicon.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocket, WebSocketRoute, expect

from tests.browser.test_widget_console import ask, log_in

pytestmark = pytest.mark.browser

WIDGET = "#kefu-widget"
TIMEOUT_MS = 30_000


def sockets_of(page: Page) -> list[WebSocket]:
    opened: list[WebSocket] = []
    page.on("websocket", lambda socket: opened.append(socket))
    return opened


def wait_until(page: Page, condition: Callable[[], bool], seconds: float = 15) -> None:
    for _ in range(int(seconds * 10)):
        if condition():
            return
        page.wait_for_timeout(100)
    assert condition()


def admin(stack: dict[str, Any]) -> httpx.Client:
    return httpx.Client(base_url=stack["admin_url"], headers={"Authorization": f"Bearer {stack['admin_key']}"})


def new_context(browser: Browser, **options: Any) -> BrowserContext:
    options.setdefault("viewport", {"width": 1280, "height": 800})
    return browser.new_context(locale="en-US", **options)


def with_widget_attribute(page: Page, name: str, value: str) -> None:
    """The demo page's widget tag with one attribute changed before the widget reads it (a site owner's
    typo, a server that is down). Changed in the page itself: a page served by route.fulfill counts as
    public, and Chromium then blocks its sockets to 127.0.0.1."""
    page.add_init_script(
        "new MutationObserver(() => {"
        "  const tag = document.querySelector('script[data-tenant]');"
        f"  if (tag && tag.dataset.{name} !== {value!r}) tag.dataset.{name} = {value!r};"
        "}).observe(document, { childList: true, subtree: true });"
    )


def test_the_widget_connects_when_opened_and_an_idle_chat_stays_closed(browser: Browser, stack: dict[str, Any]) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    context = new_context(browser)
    page = context.new_page()
    opened = sockets_of(page)
    server_sides: list[WebSocketRoute] = []

    def proxy(page_side: WebSocketRoute) -> None:
        server = page_side.connect_to_server()
        server_sides.append(page_side)
        page_side.on_message(lambda message: server.send(message))
        server.on_message(lambda message: page_side.send(message))

    page.route_web_socket(re.compile(r"^ws://"), proxy)
    page.goto(stack["demo_url"])
    page.wait_for_timeout(2000)
    assert opened == []  # a page view alone costs no connection
    page.locator(f"{WIDGET} .bubble").click()
    ask(page, "How long does delivery take?")
    expect(page.locator(f"{WIDGET} .msg.bot .sources a").first).to_be_visible()
    assert len(opened) == 1

    # The gateway closes the idle socket (API Gateway: after 10 minutes): nothing waits, so the widget
    # stays disconnected, and says nothing about it.
    server_sides[-1].close(code=1001, reason="Going away")
    page.wait_for_timeout(3000)
    assert len(opened) == 1
    expect(page.locator(f"{WIDGET} .conn")).to_be_hidden()
    # The visitor's next question reconnects, and is answered.
    ask(page, "How can I return an item?")
    expect(page.locator(f"{WIDGET} .msg.bot")).to_have_count(2)
    expect(page.locator(f"{WIDGET} .msg.visitor.pending")).to_have_count(0)
    assert len(opened) == 2
    context.close()


def test_a_wrong_widget_key_says_the_configuration_is_wrong(browser: Browser, stack: dict[str, Any]) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    context = new_context(browser)
    page = context.new_page()
    opened = sockets_of(page)
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    with_widget_attribute(page, "key", "wk_typo")
    # A message typed on an earlier visit waits to be sent: the widget connects at once to send it.
    unsent = [{"action": "sendMessage", "clientMessageId": "m-first-hour-1", "text": "How long does delivery take?"}]
    page.add_init_script(
        f"localStorage.setItem('kefu:{stack['tenant_id']}:outbox', {json.dumps(json.dumps(unsent))});"
    )
    page.goto(stack["demo_url"])
    wait_until(page, lambda: len(opened) == 1)
    page.locator(f"{WIDGET} .bubble").click()
    refused = page.locator(f"{WIDGET} .conn.refused")
    expect(refused).to_be_visible()
    expect(refused).to_contain_text("not set up for this page")
    expect(page.locator(f"{WIDGET} .msg.visitor.failed")).to_have_text(["How long does delivery take?"])
    expect(page.locator(f"{WIDGET} form.compose textarea")).to_be_disabled()  # nothing typed in vain
    page.wait_for_timeout(3000)
    assert len(opened) == 1  # a permanent refusal is not retried
    assert any("allowedOrigins" in text for text in console_errors)  # the site owner learns what to check
    context.close()

    # A server that cannot be reached is a network problem: the widget keeps trying and says so.
    context = new_context(browser)
    page = context.new_page()
    with_widget_attribute(page, "ws", "ws://127.0.0.1:9/local")
    page.goto(stack["demo_url"])
    page.locator(f"{WIDGET} .bubble").click()
    expect(page.locator(f"{WIDGET} .conn")).to_be_visible()
    expect(page.locator(f"{WIDGET} .conn")).to_have_text("Reconnecting…")
    expect(page.locator(f"{WIDGET} .conn.refused")).to_have_count(0)
    context.close()


def test_handoff_survives_a_reload_and_the_console_follows_a_conversation_back_from_the_bot(
    browser: Browser, stack: dict[str, Any]
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    with admin(stack) as client:
        client.patch(f"/v1/tenants/{stack['tenant_id']}/config", json={"handoff": {"autoAssign": False}})
    agent_context = new_context(browser)
    console = agent_context.new_page()
    log_in(console, stack)
    visitor_context = new_context(browser)
    visitor = visitor_context.new_page()
    opened = sockets_of(visitor)
    visitor.goto(stack["demo_url"])
    visitor.locator(f"{WIDGET} .bubble").click()
    ask(visitor, "How long does delivery take?")
    expect(visitor.locator(f"{WIDGET} .msg.bot .sources a").first).to_be_visible()
    visitor.locator(f"{WIDGET} .human").click()
    expect(visitor.locator(f"{WIDGET} .notice").last).to_contain_text("Connecting you")

    # A reload with the panel closed: the handoff waits, so the widget reconnects at once (a person may
    # write), and the handoff notice is shown again where it was.
    visitor.locator(f"{WIDGET} .close").click()
    visitor.reload()
    wait_until(visitor, lambda: len(opened) == 2)
    visitor.locator(f"{WIDGET} .bubble").click()
    expect(visitor.locator(f"{WIDGET} .subtitle")).to_have_text("Waiting for a person…")
    expect(visitor.locator(f"{WIDGET} .notice").filter(has_text="Connecting you")).to_have_count(1)

    # The agent takes it and hands it back to the bot, keeping the transcript open.
    queued = console.locator("#queue li[data-conversation]")
    expect(queued).to_have_count(1)
    queued.click()
    console.locator("#accept").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(1)
    console.locator("#return-to-bot").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(0)
    expect(visitor.locator(f"{WIDGET} .subtitle")).to_have_text(re.compile("Assistant"))

    # The visitor asks the bot, then for a person again: the open transcript shows all of it.
    ask(visitor, "How can I return an item?")
    expect(visitor.locator(f"{WIDGET} .msg.bot")).to_have_count(2)
    # Its answer has ended (Sources come with answer.end) before the visitor asks for a person.
    expect(visitor.locator(f"{WIDGET} .msg.bot").nth(1).locator(".sources a").first).to_be_visible()
    visitor.locator(f"{WIDGET} .human").click()
    expect(queued).to_have_count(1)
    expect(queued.locator(".name")).to_have_text(re.compile(r" · en$"))  # the page's <html lang>
    transcript = console.locator("#transcript")
    expect(transcript.locator(".m.visitor").last).to_contain_text("How can I return an item?")
    expect(transcript.locator(".m.bot")).to_have_count(2)
    console.locator("#accept").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(1)
    console.locator("#resolve").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(0)
    visitor_context.close()
    agent_context.close()


def test_the_open_transcript_follows_the_bot_after_return_to_bot(browser: Browser, stack: dict[str, Any]) -> None:
    """No frame tells agents what is said while the bot owns a conversation: the console that handed it
    back keeps its transcript open and current, before any new handoff brings it back to the queue."""
    expect.set_options(timeout=TIMEOUT_MS)
    with admin(stack) as client:
        client.patch(f"/v1/tenants/{stack['tenant_id']}/config", json={"handoff": {"autoAssign": False}})
    agent_context = new_context(browser)
    console = agent_context.new_page()
    log_in(console, stack)
    visitor_context = new_context(browser)
    visitor = visitor_context.new_page()
    visitor.goto(stack["demo_url"])
    visitor.locator(f"{WIDGET} .bubble").click()
    visitor.locator(f"{WIDGET} .human").click()
    expect(visitor.locator(f"{WIDGET} .notice").last).to_contain_text("Connecting you")

    queued = console.locator("#queue li[data-conversation]")
    expect(queued).to_have_count(1)
    queued.click()
    console.locator("#accept").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(1)
    console.locator("#return-to-bot").click()
    expect(console.locator("#chat-status")).to_have_text("bot")
    expect(visitor.locator(f"{WIDGET} .subtitle")).to_have_text(re.compile("Assistant"))

    transcript = console.locator("#transcript")
    ask(visitor, "How long does delivery take?")
    expect(visitor.locator(f"{WIDGET} .msg.bot .sources a").first).to_be_visible()
    expect(transcript.locator(".m.visitor").last).to_contain_text("How long does delivery take?")
    expect(transcript.locator(".m.bot")).to_have_count(1)
    expect(transcript.locator(".m.bot").last).to_contain_text(re.compile("working days"))
    ask(visitor, "How can I return an item?")
    expect(transcript.locator(".m.visitor").last).to_contain_text("How can I return an item?")
    expect(transcript.locator(".m.bot")).to_have_count(2)
    expect(queued).to_have_count(0)  # all of it while the bot owns the conversation
    visitor_context.close()
    agent_context.close()


def test_the_chat_page_restores_its_conversation_and_tells_agents_the_language(
    browser: Browser, stack: dict[str, Any]
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    with admin(stack) as client:  # the handoff waits in the queue (nobody is assigned on their own)
        client.patch(f"/v1/tenants/{stack['tenant_id']}/config", json={"handoff": {"autoAssign": False}})
    agent_context = new_context(browser)
    console = agent_context.new_page()
    log_in(console, stack)
    context = new_context(browser)
    page = context.new_page()
    page.goto(stack["chat_url"])
    expect(page.locator("#status")).to_have_text("online")  # the page sends only while connected
    page.locator("#text").fill("How long does delivery take?")
    page.locator("#text").press("Enter")
    answer = page.locator(".msg.bot")
    expect(answer.locator(".citations li").first).to_be_visible()
    answered = answer.first.inner_text()

    page.reload()
    expect(page.locator(".msg.visitor")).to_have_text(["How long does delivery take?"])
    expect(page.locator(".msg.bot")).to_have_count(1)
    expect(page.locator(".msg.bot .citations li").first).to_be_visible()
    assert page.locator(".msg.bot").first.inner_text() == answered

    # Asking for a person from the chat page: the queue shows the browser's language, not "?".
    expect(page.locator("#status")).to_have_text("online")
    page.locator("#text").fill("talk to a human")
    page.locator("#text").press("Enter")
    expect(page.locator(".msg.notice").last).to_contain_text("Connecting you")
    entry = console.locator("#queue li[data-conversation]").filter(has_text="en-US")
    expect(entry).to_have_count(1)
    assert "?" not in entry.locator(".name").inner_text()
    entry.click()
    console.locator("#accept").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(1)
    expect(console.locator("#send")).to_be_enabled()
    console.locator("#reply").fill("Hello from Alice")
    console.locator("#reply").press("Enter")
    expect(page.locator(".msg.agent")).to_contain_text("Hello from Alice")
    page.reload()
    expect(page.locator(".msg.agent")).to_contain_text("Hello from Alice")
    console.locator("#resolve").click()
    expect(console.locator("#mine li[data-conversation]")).to_have_count(0)
    context.close()
    agent_context.close()


def test_the_demo_shop_fits_a_phone_and_its_bubble_can_be_tapped(browser: Browser, stack: dict[str, Any]) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    context = new_context(
        browser, viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=3
    )
    page = context.new_page()
    page.goto(stack["demo_url"])
    bubble = page.locator(f"{WIDGET} .bubble")
    expect(bubble).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    box = bubble.bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390 and box["y"] + box["height"] <= 844
    # Nothing lies over the bubble: the point at its centre belongs to the widget.
    hit = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y)?.id", [box["x"] + box["width"] / 2, box["y"] + box["height"] / 2]
    )
    assert hit == "kefu-widget"
    bubble.tap()
    panel = page.locator(f"{WIDGET} .panel")
    expect(panel).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.locator(f"{WIDGET} form.compose textarea")).to_be_visible()
    context.close()


def test_every_page_has_a_favicon(browser: Browser, stack: dict[str, Any]) -> None:
    context = new_context(browser)
    page = context.new_page()
    missing: list[str] = []
    page.on("response", lambda response: missing.append(response.url) if response.status == 404 else None)
    for url in (stack["demo_url"], stack["chat_url"], stack["console_url"], stack["console_url"] + "knowledge.html"):
        page.goto(url)
        icon = page.locator("link[rel=icon]")
        expect(icon).to_have_count(1)
        assert (icon.get_attribute("href") or "").startswith("data:image/svg+xml"), url
        page.wait_for_timeout(300)
    assert missing == []
    context.close()


def test_a_key_typed_while_the_console_loads_is_kept(browser: Browser, stack: dict[str, Any]) -> None:
    # A fast typist or a password manager fills the key before config.json has arrived: the key stays,
    # and Log in waits for the server address instead of submitting with none.
    expect.set_options(timeout=TIMEOUT_MS)
    context = new_context(browser)
    console = context.new_page()
    held: list[Any] = []
    console.route("**/console/config.json", lambda route: held.append(route))
    console.goto(stack["console_url"])
    agent = stack["agents"][0]
    console.locator("#login-key").fill(agent["agent_key"])
    wait_until(console, lambda: len(held) == 1)
    expect(console.locator("#login-form button")).to_be_disabled()
    held[0].continue_()
    console.locator("#login-form button").click()
    expect(console.locator("#me-name")).to_have_text(agent["name"])
    context.close()
