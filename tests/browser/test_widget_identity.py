"""The widget's identity in Chromium against the whole local engine (issue 11, finding 3): the server
issues the visitor's id and signed token, the widget keeps the token and comes back with it after a
reload; a browser that copies another visitor's id and conversation id (but not the token) starts as
a new visitor and sees none of that conversation. A user the tenant's site signs in (data-user-id,
data-user-hash) is one visitor on every device."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from shared.chat.identity import user_hash

pytestmark = pytest.mark.browser

WIDGET = "#kefu-widget"
TIMEOUT_MS = 30_000
QUESTION = "How long does delivery take to Shenzhen?"


def stored(page: Page, tenant_id: str) -> dict[str, Any]:
    prefix = f"kefu:{tenant_id}:"
    raw = page.evaluate(
        "prefix => Object.fromEntries(Object.entries(localStorage).filter(([k]) => k.startsWith(prefix)))", prefix
    )
    return {key.removeprefix(prefix): json.loads(value) for key, value in raw.items()}


def open_widget(page: Page, url: str) -> None:
    page.goto(url)
    page.locator(f"{WIDGET} .bubble").click()


def test_the_token_brings_the_visitor_back_and_a_copied_id_does_not(browser: Browser, stack: dict[str, Any]) -> None:
    tenant_id = stack["tenant_id"]
    visitor_context = browser.new_context(locale="en-US")
    copier_context = browser.new_context(locale="en-US")
    try:
        page = visitor_context.new_page()
        open_widget(page, stack["demo_url"])
        page.locator(f"{WIDGET} form.compose textarea").fill(QUESTION)
        page.locator(f"{WIDGET} form.compose textarea").press("Enter")
        expect(page.locator(f"{WIDGET} .msg.bot").first).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator(f"{WIDGET} .msg.visitor").first).not_to_have_class("pending", timeout=TIMEOUT_MS)
        mine = stored(page, tenant_id)
        assert mine["visitor"].startswith("v_") and mine["token"].startswith(f"vt1.{mine['visitor']}.")
        assert mine["conversation"].startswith("c_")

        # A reload: the token restores the same visitor and the conversation.
        page.reload()
        page.locator(f"{WIDGET} .bubble").click()
        expect(page.locator(f"{WIDGET} .msg.visitor").first).to_have_text(QUESTION, timeout=TIMEOUT_MS)
        assert stored(page, tenant_id)["visitor"] == mine["visitor"]

        # Another browser copies the visitor id and the conversation id, not the token.
        copied = {"visitor": mine["visitor"], "conversation": mine["conversation"]}
        copier_context.add_init_script(
            "for (const [k, v] of Object.entries(" + json.dumps(copied) + ")) "
            f"localStorage.setItem('kefu:{tenant_id}:' + k, JSON.stringify(v));"
        )
        copier = copier_context.new_page()
        open_widget(copier, stack["demo_url"])
        copier.wait_for_function(
            "([key, old]) => JSON.parse(localStorage.getItem(key) || 'null') !== old",
            arg=[f"kefu:{tenant_id}:visitor", mine["visitor"]],
            timeout=TIMEOUT_MS,
        )
        theirs = stored(copier, tenant_id)
        assert theirs["visitor"] != mine["visitor"] and "conversation" not in theirs
        copier.wait_for_timeout(3000)  # the widget's second history look would have come by now
        expect(copier.locator(f"{WIDGET} .msg.visitor")).to_have_count(0)
    finally:
        visitor_context.close()
        copier_context.close()


def test_a_signed_in_user_is_the_same_visitor_on_every_device_and_a_forged_hash_is_not(
    browser: Browser, stack: dict[str, Any]
) -> None:
    admin = {"Authorization": f"Bearer {stack['admin_key']}"}
    with httpx.Client(base_url=stack["admin_url"], headers=admin, timeout=30) as client:
        tenant = client.post("/v1/tenants", json={"name": "Signed shop"}).json()
        secret = client.post(f"/v1/tenants/{tenant['tenantId']}/identity-secret").json()["identitySecret"]

    def visitor_on_a_device(signature: str) -> str:
        # The tenant's site: the demo page's widget tag, carrying this tenant and the hash its server
        # computed for its logged-in user (set before the deferred widget script runs).
        attributes = {
            "tenant": tenant["tenantId"],
            "key": tenant["widgetKey"],
            "userId": "customer-42",
            "userHash": signature,
        }
        context = browser.new_context(locale="en-US")
        context.add_init_script(
            "new MutationObserver(() => { const s = document.querySelector('script[src*=kefu-widget]');"
            f" if (s) Object.assign(s.dataset, {json.dumps(attributes)}); }})"
            ".observe(document, {childList: true, subtree: true});"
        )
        try:
            page = context.new_page()
            open_widget(page, stack["demo_url"])
            page.wait_for_function(
                "key => localStorage.getItem(key) !== null",
                arg=f"kefu:{tenant['tenantId']}:visitor",
                timeout=TIMEOUT_MS,
            )
            return str(stored(page, tenant["tenantId"])["visitor"])
        finally:
            context.close()

    signed = user_hash(secret, "customer-42")
    phone, laptop = visitor_on_a_device(signed), visitor_on_a_device(signed)
    assert phone == laptop and phone.startswith("u_")
    forged = visitor_on_a_device(user_hash("a guess", "customer-42"))
    assert forged != phone and forged.startswith("v_")
