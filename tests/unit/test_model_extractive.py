from __future__ import annotations

import pytest

from shared.knowledge.base import Passage
from shared.model.answer_model import Answer, Turn
from shared.model.extractive import ExtractiveModel
from shared.model.language import detect_language, split_into_pieces
from shared.model.sentences import DEFAULT_BUDGET, split_sentences, terms, width


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


SHIPPING_START = passage(
    "Shipping times and delivery options",
    "We ship from our warehouse in Hangzhou every working day. Orders placed before 4 pm leave the same day.\n\n"
    "Standard delivery takes 2 to 4 working days within mainland China and is free on orders over ¥99. Below "
    "that amount a flat shipping fee of ¥8 applies.\n\nExpress delivery (next working day to most large cities) "
    "costs ¥18 and can be chosen at checkout.\n\nBulky items such as sofas are delivered by our furniture "
    "carrier within 5 to 10 working days. The carrier phones you the day before to book a two-hour delivery "
    "window.",
    0.55,
    "shipping-times",
)
# The entry's second chunk (it overlaps the first): shorter, so it outranks the first for "delivery".
SHIPPING_END = passage(
    "Shipping times and delivery options",
    "The carrier phones you the day before to book a two-hour delivery window.\n\nThe estimated delivery date "
    "shown at checkout already includes public holidays.",
    0.63,
    "shipping-times",
)
REFUNDS_ZH = passage(
    "退款多久到账？",
    "退款多久到账？\n退货包裹到达仓库后，我们会在2个工作日内完成质检，然后原路退款。到账时间：微信支付、支付宝一般1至3个"
    "工作日；信用卡、借记卡需5至10个工作日。礼品卡支付的金额立即退回礼品卡余额。如超过上述时间仍未到账，请联系在线客服。",
    0.9,
    "refunds-zh",
)


def test_plan_cites_the_best_passages_entry_with_the_sentences_it_quotes() -> None:
    model = ExtractiveModel(min_answer_score=0.35)

    answer = model.plan("how do I reset my password?", [SHIPPING, RESET])

    [cited] = answer.citations
    assert (cited.document_id, cited.title, cited.score) == ("reset", "Reset your password", 0.81)
    assert cited.text == "Open Settings, choose Security, then click Reset password."


def test_plan_cites_nothing_when_the_best_score_is_below_the_threshold() -> None:
    model = ExtractiveModel(min_answer_score=0.9)

    assert model.plan("how do I reset my password?", [SHIPPING, RESET]).citations == []
    assert model.plan("anything", []).citations == []


def test_plan_accepts_a_score_exactly_at_the_threshold() -> None:
    model = ExtractiveModel(min_answer_score=0.42)

    assert model.plan("shipping?", [SHIPPING]).citations == [SHIPPING]


def quote(question: str, passages: list[Passage], min_answer_score: float = 0.35) -> str:
    model = ExtractiveModel(min_answer_score=min_answer_score)
    return "".join(model.stream(question, model.plan(question, passages), history=[]))


def test_the_quote_states_the_fact_asked_for_even_from_a_lower_ranked_chunk_of_the_entry() -> None:
    text = quote("How long does delivery take?", [SHIPPING_END, SHIPPING_START, SHIPPING])

    assert text.startswith('From our help centre ("Shipping times and delivery options"): Standard delivery takes')
    assert "2 to 4 working days" in text
    assert "furniture carrier" not in text and "two-hour delivery window" not in text


def test_only_the_best_entry_is_quoted_with_all_of_its_chunks_even_those_under_the_threshold() -> None:
    weak_start = SHIPPING_START.model_copy(update={"score": 0.2})

    text = quote("How long does delivery take?", [SHIPPING_END, weak_start, RESET.model_copy(update={"score": 0.3})])

    assert "Standard delivery takes 2 to 4 working days" in text
    assert "Settings" not in text


def test_a_chinese_quote_keeps_the_numbers_and_units_and_skips_the_question_line() -> None:
    text = quote("退款多久到账？", [REFUNDS_ZH])

    assert text.startswith("来自我们的帮助中心（“退款多久到账？”）：")
    body = text.removeprefix("来自我们的帮助中心（“退款多久到账？”）：")
    assert "1至3个工作日" in body and "5至10个工作日" in body
    assert "退款多久到账" not in body


def test_a_question_asking_for_an_amount_prefers_the_sentence_that_states_one() -> None:
    entry = passage(
        "Express",
        "Express delivery is popular with our customers. Express delivery costs ¥18 per order.",
        0.7,
    )

    assert quote("How much does express delivery cost?", [entry]).endswith("Express delivery costs ¥18 per order.")
    assert quote("Is express delivery popular?", [entry]).endswith("Express delivery is popular with our customers.")


def test_a_question_about_a_duration_quotes_the_sentence_that_states_one_over_wordier_ones() -> None:
    manual = passage(
        "小蓝充电宝 P20 使用说明书",
        "首次使用前建议先将充电宝充满电。充满电的P20可以为一部4000mAh的手机充电约3.5次。"
        "使用20W快充充电器时，充满一次大约需要4.5小时。",
        0.4,
    )

    assert "4.5小时" in quote("充满电要多久", [manual])
    # Not a question about time: the sentence that shares the most words still wins.
    assert "3.5次" in quote("充满电的P20能给手机充几次电", [manual])


def test_a_question_about_a_price_quotes_the_sentence_that_states_one() -> None:
    entry = passage(
        "Gift wrapping",
        "Gift wrapping is available for gift wrapping orders at checkout. Each wrapped item costs ¥10.",
        0.6,
    )

    assert quote("What is the price of gift wrapping?", [entry]).endswith("Each wrapped item costs ¥10.")


def test_a_passage_found_by_meaning_alone_is_quoted_from_its_start() -> None:
    text = quote("Can I send it back?", [RESET])

    assert text.endswith(f": {RESET.text}")


def test_the_quote_stays_short_however_long_the_passage() -> None:
    sentences = [f"Rule {n}: parcels to zone {n} take {n + 1} working days to arrive." for n in range(40)]
    entry = passage("Delivery zones", " ".join(sentences), 0.8)

    text = quote("How many working days do parcels take to arrive?", [entry])

    body = text.removeprefix('From our help centre ("Delivery zones"): ')
    assert 0 < len(body) <= 2 * DEFAULT_BUDGET
    assert body.count("Rule") <= 3


def test_a_run_on_text_without_punctuation_is_cut_at_a_clause_boundary() -> None:
    entry = passage("Table", ", ".join(f"cell {n} value {n}" for n in range(200)), 0.8)

    body = quote("What is the value of cell 3?", [entry]).removeprefix('From our help centre ("Table"): ')

    assert width(body) <= 2 * DEFAULT_BUDGET + 1 and body.endswith("…")
    assert not body.endswith(",…")


def test_lines_a_pdf_wrapped_mid_sentence_are_joined_back() -> None:
    page = (
        "二、为充电宝充电\n请使用随附的数据线为充电宝充电。使用20W\n快充充电器时，充满一次大约需要4.5小\n"
        "时；普通充电器约需要9小\n时。"
    )

    assert split_sentences(page) == [
        "二、为充电宝充电请使用随附的数据线为充电宝充电。",
        "使用20W快充充电器时，充满一次大约需要4.5小时；普通充电器约需要9小时。",
    ]
    assert split_sentences("Orders leave the\nwarehouse the same day.\nWe email you.") == [
        "Orders leave the warehouse the same day.",
        "We email you.",
    ]


def test_decimals_and_dates_do_not_end_a_sentence() -> None:
    assert split_sentences("During 11.11 and 6.18 dispatch takes 1.5 extra days. Sorry!") == [
        "During 11.11 and 6.18 dispatch takes 1.5 extra days.",
        "Sorry!",
    ]


def test_chinese_terms_are_character_bigrams_and_english_terms_are_stemmed() -> None:
    assert terms("充满电要多久") == ["充满", "满电", "电要", "要多", "多久"]
    assert terms("How long does delivery take? Refunds") == ["long", "delivery", "take", "refund"]


def test_a_whole_passage_cited_by_another_models_plan_is_narrowed_when_quoted() -> None:
    model = ExtractiveModel(min_answer_score=0.35)

    text = "".join(model.stream("How long does delivery take?", Answer(citations=[SHIPPING_START]), history=[]))

    assert "2 to 4 working days" in text and "furniture" not in text


def test_english_answer_comes_in_several_pieces() -> None:
    model = ExtractiveModel(min_answer_score=0.35)
    answer = model.plan("How do I reset my password?", [RESET])

    pieces = list(model.stream("How do I reset my password?", answer, history=[]))

    assert "".join(pieces) == (
        'From our help centre ("Reset your password"): Open Settings, choose Security, then click Reset password.'
    )
    assert len(pieces) >= 10
    assert all(pieces)


def test_chinese_question_gets_a_chinese_answer_in_several_pieces() -> None:
    model = ExtractiveModel(min_answer_score=0.35)
    answer = model.plan("怎么重置密码？", [RESET_ZH])

    pieces = list(model.stream("怎么重置密码？", answer, history=[]))

    assert "".join(pieces) == "来自我们的帮助中心（“重置密码”）：打开设置，选择安全，然后点击重置密码。"
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


def test_a_table_row_is_quoted_under_its_header_row() -> None:
    table = passage(
        "Size chart",
        "| Size | Chest (cm) | Waist (cm) |\n| S | 88-92 | 68-72 |\n| M | 92-96 | 72-76 |\n| L | 96-100 | 76-80 |",
        0.8,
    )

    body = quote("What is the waist of size L?", [table]).removeprefix('From our help centre ("Size chart"): ')

    assert body == "| Size | Chest (cm) | Waist (cm) |\n| L | 96-100 | 76-80 |"
