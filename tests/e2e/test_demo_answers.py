"""The README's demo questions, asked as a visitor would (a real WebSocket against `python -m local.run`
with the default extractive model): each answer states the fact the README promises, from its entry.
Then a tenant that uploads a Chinese product manual (PDF) gets the manual's facts."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.e2e.client import LocalStackInfo, ask, ask_tenant_bot, open_visitor, send_message

pytestmark = pytest.mark.e2e


def answer_to(stack: LocalStackInfo, question: str) -> dict:
    async def scenario() -> list[dict]:
        async with await open_visitor(stack.visitor_url()) as ws:
            return await ask(ws, send_message(question))

    frames = asyncio.run(scenario())
    end = frames[-1]
    assert end["type"] == "answer.end", frames
    assert end["text"] == "".join(f["text"] for f in frames if f["type"] == "answer.delta")
    return end


def test_how_long_does_delivery_take_says_2_to_4_working_days(local_stack: LocalStackInfo) -> None:
    end = answer_to(local_stack, "How long does delivery take?")

    assert "Standard delivery takes 2 to 4 working days" in end["text"]
    assert "furniture carrier" not in end["text"]  # the entry's other paragraph, not what was asked
    assert [c["documentId"] for c in end["citations"]] == ["shipping-times"]
    assert "2 to 4 working days" in end["citations"][0]["snippet"]


def test_refund_time_in_chinese_gives_the_days_per_payment_method(local_stack: LocalStackInfo) -> None:
    end = answer_to(local_stack, "退款多久到账？")

    assert end["text"].startswith("来自我们的帮助中心")
    assert "微信支付、支付宝一般1至3个工作日" in end["text"] and "5至10个工作日" in end["text"]
    assert [c["documentId"] for c in end["citations"]] == ["refunds-zh"]
    assert len(end["text"]) < 220  # the sentences that answer, not the whole entry


MANUAL = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge" / "powerbank-manual-zh.pdf"


@pytest.fixture(scope="module")
def manual_tenant(local_stack: LocalStackInfo) -> dict[str, str]:
    """A new tenant whose only knowledge is an uploaded Chinese product manual (PDF)."""
    with local_stack.admin() as admin:
        tenant = admin.post("/v1/tenants", json={"name": "充电宝商店"}).json()
        upload = admin.post(
            f"/v1/tenants/{tenant['tenantId']}/knowledge/files",
            files=[("files", (MANUAL.name, MANUAL.read_bytes(), "application/pdf"))],
        )
        assert upload.status_code == 200, upload.text
    return dict(tenant)


def test_the_manuals_charging_section_ranks_first_for_how_long_a_full_charge_takes(
    local_stack: LocalStackInfo, manual_tenant: dict[str, str]
) -> None:
    with local_stack.admin() as admin:
        found = admin.get(
            f"/v1/tenants/{manual_tenant['tenantId']}/knowledge/search", params={"q": "充满电要多久"}
        ).json()

    best = found["results"][0]
    assert best["section"] == "page 1 > 二、为充电宝充电"
    assert "充满一次大约需要4.5小时" in best["text"]


def test_the_bot_answers_the_charging_time_from_the_uploaded_manual(
    local_stack: LocalStackInfo, manual_tenant: dict[str, str]
) -> None:
    end = ask_tenant_bot(local_stack, manual_tenant, "充电宝充满电需要多长时间？")

    assert "充满一次大约需要4.5小时" in end["text"]
    assert [c["documentId"] for c in end["citations"]] == ["powerbank-manual-zh.pdf"]


def test_the_short_question_about_charging_time_is_answered_too(
    local_stack: LocalStackInfo, manual_tenant: dict[str, str]
) -> None:
    end = ask_tenant_bot(local_stack, manual_tenant, "充满电要多久")

    assert "4.5小时" in end["text"]
