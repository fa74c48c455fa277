"""The widget in Chromium when the model misbehaves (the deployment's model on a real OpenAI-compatible
server that can be told to fail, behind `python -m local.run`): a cut answer is shown as interrupted
with "Ask again" and no rating; a model that does not answer gets a notice with "Ask again"; asking
again gets a whole answer."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.e2e.conftest import start_local_run, stop, wait_for_local_json
from tests.support.openai_sse_server import OpenAISSEServer, Script

pytestmark = pytest.mark.browser

WIDGET = "#kefu-widget"
TIMEOUT_MS = 30_000
TOKENS = ["Deliveries ", "take ", "2 to 4 ", "working days."]


@pytest.fixture(scope="module")
def model_server() -> Iterator[OpenAISSEServer]:
    with OpenAISSEServer(Script(tokens=TOKENS)) as server:
        yield server


@pytest.fixture(scope="module")
def faulty_stack(model_server: OpenAISSEServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    state_dir = tmp_path_factory.mktemp("kefu-browser-faults")
    env = {
        "KEFU_LLM_PROVIDER": "openai",
        "KEFU_LLM_BASE_URL": model_server.base_url,
        "KEFU_LLM_MODEL": "qwen",
        "KEFU_LLM_FIRST_TOKEN_BUDGET_SECONDS": "3",
        "KEFU_LLM_FIRST_TOKEN_TIMEOUT_SECONDS": "2",
        # Every question reaches the model (the retry must not be answered from the cache).
        "KEFU_ANSWER_CACHE_TTL_SECONDS": "0",
    }
    process, log = start_local_run(state_dir, env)
    try:
        yield wait_for_local_json(process, state_dir)
    finally:
        stop(process)
        log.close()


def test_cut_answers_and_an_absent_model_offer_to_ask_again(
    browser: Browser, faulty_stack: dict[str, Any], model_server: OpenAISSEServer
) -> None:
    expect.set_options(timeout=TIMEOUT_MS)
    context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-US")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(faulty_stack["demo_url"])
    page.locator(f"{WIDGET} .bubble").click()
    textarea = page.locator(f"{WIDGET} textarea")

    # The model server dies after two tokens: the text stays, marked as interrupted, without rating.
    model_server.reset(Script(tokens=TOKENS, cut_after=2))
    textarea.fill("How long does delivery take?")
    textarea.press("Enter")
    cut = page.locator(f"{WIDGET} .msg.bot.cut")
    expect(cut).to_have_count(1)
    expect(cut.locator(".text")).to_have_text("Deliveries take ")
    expect(cut.locator(".cut-line")).to_contain_text("interrupted")
    expect(cut.locator(".rate")).to_have_count(0)

    # The server is back: "Ask again" sends the same question, and a whole answer comes.
    model_server.reset(Script(tokens=TOKENS))
    cut.locator(".retry").click()
    visitor_messages = page.locator(f"{WIDGET} .msg.visitor")
    expect(visitor_messages).to_have_count(2)
    expect(visitor_messages.last).to_have_text("How long does delivery take?")
    whole = page.locator(f"{WIDGET} .msg.bot").last
    expect(whole.locator(".text")).to_have_text("".join(TOKENS))
    expect(whole).not_to_have_class(re.compile("cut"))
    expect(whole.locator(".rate button")).to_have_count(2)

    # The model accepts the request and never answers: a notice with "Ask again", within the budget.
    model_server.reset(Script(tokens=TOKENS, hang_before_headers=120))
    textarea.fill("Do you ship to Macau?")
    textarea.press("Enter")
    notice = page.locator(f"{WIDGET} .notice.unavailable")
    expect(notice).to_have_count(1)
    expect(notice).to_contain_text("could not answer")
    model_server.reset(Script(tokens=["Yes, ", "we do."]))
    notice.locator(".retry").click()
    expect(page.locator(f"{WIDGET} .msg.bot").last.locator(".text")).to_have_text("Yes, we do.")

    # A reload restores all of it from history, marked the same way.
    page.reload()
    page.locator(f"{WIDGET} .bubble").click()
    expect(page.locator(f"{WIDGET} .msg.bot.cut .retry")).to_have_count(1)
    expect(page.locator(f"{WIDGET} .notice.unavailable")).to_have_count(1)
    assert errors == []
    context.close()
