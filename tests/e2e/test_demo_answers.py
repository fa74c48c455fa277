"""The README's demo questions, asked as a visitor would (a real WebSocket against `python -m local.run`
with the default extractive model): each answer states the fact the README promises, from its entry."""

from __future__ import annotations

import asyncio

import pytest

from tests.e2e.client import LocalStackInfo, ask, open_visitor, send_message

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
