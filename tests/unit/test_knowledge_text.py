"""Tokenizer (Chinese + English) and chunker."""

from __future__ import annotations

from shared.knowledge.base import Document
from shared.knowledge.chunking import chunk_document
from shared.knowledge.text import alternative_terms, has_cjk, normalize, split_passages, stem, tokenize


def test_chinese_is_segmented_into_words_not_characters() -> None:
    tokens = tokenize("我想退货，请问退款多久到账？")
    assert "退货" in tokens
    assert "退款" in tokens
    # function words and punctuation are dropped
    assert "我" not in tokens
    assert not any(t in tokens for t in "，？")
    # character bigrams beside the words: recall where jieba cuts a colloquial phrase differently
    assert "多久" in tokens and "到账" in tokens and "款多" in tokens


def test_traditional_characters_fold_to_simplified() -> None:
    assert tokenize("寬頻報修") == tokenize("宽频报修")
    assert normalize("這裡的話費餘額") == "这里的话费余额"


def test_pinyin_initials_match_what_people_type() -> None:
    assert "i:sfz" in tokenize("身份证丢了")
    assert alternative_terms("sfz丢了怎么办 kd") == ["i:sfz", "i:kd"]
    assert alternative_terms("why is my refund late") == []  # English words are no initials
    assert "i:sfz" not in tokenize("sfz")  # only a query's alternatives, never a document's Latin words


def test_search_mode_also_yields_the_parts_of_long_words() -> None:
    tokens = tokenize("中华人民共和国")
    assert "中华人民共和国" in tokens
    assert "共和国" in tokens


def test_english_is_lowercased_stopworded_and_stemmed() -> None:
    assert tokenize("How do I track my Orders?") == ["track", "order"]
    assert tokenize("Refunds refunded REFUNDING") == ["refund", "refund", "refund"]
    assert tokenize("shipping shipped ship") == ["ship", "ship", "ship"]
    assert tokenize("the shop's policies") == ["shop", "policy"]


def test_stem_keeps_short_and_non_alpha_words() -> None:
    assert stem("bus") == "bus"
    assert stem("3ds") == "3ds"
    assert stem("address") == "address"


def test_mixed_text_and_full_width_characters() -> None:
    tokens = tokenize("iPhone１５ Pro 的保修期是多久？ＡＢＣ")
    assert "iphone15" in tokens
    assert "pro" in tokens
    assert "保修期" in tokens or "保修" in tokens
    assert "abc" in tokens


def test_has_cjk() -> None:
    assert has_cjk("hello 世界")
    assert not has_cjk("hello world")


def test_short_document_is_one_chunk_with_its_metadata() -> None:
    document = Document(id="faq-1", title="Returns", text="Return within 30 days.", url="https://x.example/r")
    chunks = chunk_document(document)
    assert len(chunks) == 1
    assert (chunks[0].document_id, chunks[0].title, chunks[0].url) == ("faq-1", "Returns", "https://x.example/r")
    assert chunks[0].text == "Return within 30 days."


def test_blank_text_still_gives_a_findable_chunk() -> None:
    chunks = chunk_document(Document(id="d", title="Only a title", text="   "))
    assert [c.text for c in chunks] == ["Only a title"]


def test_long_english_text_is_split_on_sentence_boundaries_with_overlap() -> None:
    sentences = [f"Sentence number {n} says something about parcels and refunds." for n in range(60)]
    text = " ".join(sentences)
    passages = split_passages(text, max_chars=800, overlap_chars=120)
    assert len(passages) > 1
    for passage in passages:
        assert len(passage) <= 800
        assert passage.startswith("Sentence number") and passage.endswith(".")
    # consecutive passages share at least one whole sentence
    for left, right in zip(passages, passages[1:], strict=False):
        first_sentence = right.split(". ")[0] + "."
        assert first_sentence in left
    # nothing is lost
    assert all(sentence in " ".join(passages) for sentence in sentences)


def test_long_chinese_text_is_split_after_chinese_punctuation() -> None:
    text = "".join(f"第{n}条：商品签收后三十天内可以申请退货。" for n in range(80))
    passages = split_passages(text, max_chars=600, overlap_chars=60)
    assert len(passages) > 1
    assert all(len(p) <= 600 for p in passages)
    assert all(p.endswith("。") for p in passages)
    assert all(f"第{n}条" in "".join(passages) for n in range(80))


def test_paragraphs_are_preferred_boundaries_and_tiny_tails_merge() -> None:
    text = ("A" * 500) + "\n\n" + ("B" * 500) + "\n\nShort tail."
    passages = split_passages(text, max_chars=800, overlap_chars=0)
    assert passages[0] == "A" * 500
    assert passages[-1].endswith("Short tail.")
    assert "B" * 500 in passages[-1]


def test_a_sentence_longer_than_the_limit_is_hard_split() -> None:
    text = " ".join(["word"] * 600)  # 2999 chars, no sentence boundary
    passages = split_passages(text, max_chars=800, overlap_chars=0)
    assert len(passages) >= 4
    assert all(len(p) <= 800 for p in passages)
    assert all(not p.startswith("ord") for p in passages)  # split at spaces, not inside words
