"""Citation markers in an LLM's answer, in Chromium: the widget (on the demo shop page) and the chat
page turn "[n]" into a link to the answer's n-th source and drop markers that name no source.

The whole engine runs (`python -m local.run`) with its model on the OpenAI-compatible stub server, which
streams a reply citing [1], [2] and a source that does not exist, [7]."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, expect

from tests.e2e.conftest import start_local_run, stop, wait_for_local_json
from tests.support.openai_sse_server import OpenAISSEServer, Script

pytestmark = pytest.mark.browser

TIMEOUT_MS = 30_000
REPLY = ["Standard delivery takes ", "2 to 4 working days [1]", ", and you can track it [2]", ". See also [7]."]


@pytest.fixture(scope="module")
def model_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir: Path = tmp_path_factory.mktemp("kefu-markers")
    with OpenAISSEServer(Script(tokens=REPLY)) as server:
        env = {"KEFU_LLM_PROVIDER": "openai", "KEFU_LLM_BASE_URL": server.base_url, "KEFU_LLM_MODEL": "qwen"}
        process, log = start_local_run(state_dir, env)
        try:
            yield wait_for_local_json(process, state_dir)
        finally:
            stop(process)
            log.close()


def check_markers(text: Locator, citations: list[dict[str, Any]]) -> None:
    """Each marker naming a source links to it (or labels it); [7] is gone."""
    expect(text).to_have_text(re.compile(r"^Standard delivery takes 2 to 4 working days \[1\], and you can track it"))
    expect(text).not_to_contain_text("[7]")
    expect(text).to_contain_text("See also.")
    refs = text.locator(".cite")
    expect(refs).to_have_count(2 if len(citations) >= 2 else 1)
    for n, ref in enumerate(refs.all(), start=1):
        source = citations[n - 1]
        expect(ref).to_have_text(f"[{n}]")
        expect(ref).to_have_attribute("title", source["title"])
        expect(ref).to_have_attribute("href", source["url"])
        expect(ref).to_have_attribute("target", "_blank")


def test_markers_become_links_to_their_sources_in_the_widget_and_the_chat_page(
    browser: Browser, model_stack: dict[str, Any]
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    errors: list[str] = []
    ends: list[dict[str, Any]] = []

    def watch(page: Any) -> None:
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("websocket", lambda ws: ws.on("framereceived", lambda payload: record(payload)))

    def record(payload: str | bytes) -> None:
        frame = json.loads(payload)
        if frame.get("type") == "answer.end":
            ends.append(frame)

    widget_page = context.new_page()
    watch(widget_page)
    widget_page.goto(model_stack["demo_url"])
    widget_page.locator("#kefu-widget .bubble").click()
    widget_page.locator("#kefu-widget textarea").fill("How long does delivery take?")
    widget_page.locator("#kefu-widget textarea").press("Enter")
    answer = widget_page.locator("#kefu-widget .msg.bot:not(.streaming) .text").first
    expect(answer).to_contain_text("See also")
    assert ends and ends[-1]["citations"], ends
    citations = ends[-1]["citations"]
    assert citations[0]["documentId"] == "shipping-times"
    check_markers(answer, citations)

    chat_page = context.new_page()
    watch(chat_page)
    chat_page.goto(model_stack["chat_url"])
    expect(chat_page.locator("#send")).to_be_enabled()
    chat_page.locator("#text").fill("How long will delivery take?")
    chat_page.locator("#send").click()
    reply = chat_page.locator(".msg.bot:not(.streaming)").first
    expect(reply).to_contain_text("See also")
    check_markers(reply, ends[-1]["citations"])

    assert errors == []
    context.close()
