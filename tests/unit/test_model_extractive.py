from __future__ import annotations

import pytest

from shared.knowledge.base import Passage
from shared.model.base import Answer, Turn
from shared.model.extractive import ExtractiveModel
from shared.model.language import detect_language, split_into_pieces


def passage(title: str, text: str, score: float, document_id: str = "doc") -> Passage:
    return Passage(document_id=document_id, title=title, text=text, score=score)


RESET = passage(
    "Reset your password",
    "Open Settings, choose Security, then click Reset password. A link arrives by email within 5 minutes.",
    0.81,
    "reset",
)
SHIPPING = passage("Shipping times", "Orders ship within 2 business days.", 0.42, "shipping")
RESET_ZH = passage(
    "重置密码", "打开设置，选择安全，然后点击重置密码。重置链接会在五分钟内发到您的邮箱。", 0.77, "reset-zh"
)


def test_plan_keeps_only_the_best_passage_when_it_clears_the_threshold() -> None:
    model = ExtractiveModel(min_answer_score=0.35)

    answer = model.plan("how do I reset my password?", [SHIPPING, RESET])

    assert answer.citations == [RESET]


def test_plan_cites_nothing_when_the_best_score_is_below_the_threshold() -> None:
    model = ExtractiveModel(min_answer_score=0.9)

    assert model.plan("how do I reset my password?", [SHIPPING, RESET]).citations == []
    assert model.plan("anything", []).citations == []


def test_plan_accepts_a_score_exactly_at_the_threshold() -> None:
    model = ExtractiveModel(min_answer_score=0.42)

    assert model.plan("shipping?", [SHIPPING]).citations == [SHIPPING]


def test_english_answer_quotes_the_passage_in_several_pieces() -> None:
    model = ExtractiveModel(min_answer_score=0.35)
    answer = model.plan("How do I reset my password?", [RESET])

    pieces = list(model.stream("How do I reset my password?", answer, history=[]))

    assert "".join(pieces) == f'From our help centre ("Reset your password"): {RESET.text}'
    assert len(pieces) >= 10
    assert all(pieces)


def test_chinese_question_gets_a_chinese_answer_in_several_pieces() -> None:
    model = ExtractiveModel(min_answer_score=0.35)
    answer = model.plan("怎么重置密码？", [RESET_ZH])

    pieces = list(model.stream("怎么重置密码？", answer, history=[]))

    assert "".join(pieces) == f"来自我们的帮助中心（“重置密码”）：{RESET_ZH.text}"
    assert len(pieces) >= 5
    assert max(len(piece) for piece in pieces) <= 12


def test_no_match_says_it_does_not_know_and_offers_a_human() -> None:
    model = ExtractiveModel(min_answer_score=0.35)
    history = [Turn(role="visitor", text="hi"), Turn(role="bot", text="Hello! How can I help?")]

    english = "".join(model.stream("Can I pay with bitcoin?", Answer(citations=[]), history))
    chinese = "".join(model.stream("可以用比特币付款吗？", Answer(citations=[]), history))

    assert english == ("Sorry, I could not find that in our help centre. You can rephrase, or ask for a human agent.")
    assert "人工客服" in chinese and "抱歉" in chinese
    assert len(list(model.stream("Can I pay with bitcoin?", Answer(citations=[]), []))) > 1


@pytest.mark.parametrize(
    ("text", "language"),
    [
        ("How do I reset my password?", "en"),
        ("怎么重置密码？", "zh"),
        ("我的 iPhone 订单什么时候发货？", "zh"),
        ("How do I change my 密码?", "en"),
        ("", "en"),
        ("12345 ???", "en"),
    ],
)
def test_language_follows_the_main_script_of_the_question(text: str, language: str) -> None:
    assert detect_language(text) == language


@pytest.mark.parametrize(
    "text",
    [
        "From our help centre: open Settings,  then   click Reset.\n\nDone!",
        "来自我们的帮助中心（“重置密码”）：打开设置，选择安全。然后点击重置密码！",
        "Mixed 中英文 text, with emoji 👍 and URLs https://example.com/a?b=c ",
        "  leading and trailing whitespace  ",
        "",
    ],
)
def test_pieces_join_back_to_exactly_the_original_text(text: str) -> None:
    assert "".join(split_into_pieces(text)) == text
