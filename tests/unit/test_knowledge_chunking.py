"""Structure-aware chunking and how the index treats its chunks (Q/A pairs, tables, phrasings)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from shared.knowledge.base import Block, Document
from shared.knowledge.chunking import chunk_document, table_passages
from shared.knowledge.local_index import LocalHybridIndex
from tests.unit.test_knowledge_local_index import FakeEmbedder


def test_a_qa_pair_is_one_chunk_however_long() -> None:
    answer = " ".join(f"Step {n}: do the thing number {n} carefully." for n in range(100))  # ~4,500 chars
    document = Document(
        id="faq", title="FAQ", blocks=[Block(kind="qa", questions=["How do I set it up?"], text=answer)]
    )
    (chunk,) = chunk_document(document, max_chars=800)
    assert chunk.kind == "qa" and chunk.text == f"How do I set it up?\n{answer}"
    assert chunk.section == "How do I set it up?"


def test_each_table_chunk_carries_the_header_and_no_row_is_split() -> None:
    header = ["Product", "Price", "Warranty"]
    rows = [[f"Product number {n}", f"{n}.99", f"{n % 4 + 1} years"] for n in range(200)]
    passages = table_passages(header, rows, max_chars=400)
    assert len(passages) > 5
    for passage in passages:
        lines = passage.splitlines()
        assert lines[0] == "| Product | Price | Warranty |"
        assert len(passage) <= 400
    assert [line for p in passages for line in p.splitlines()[1:]] == [f"| {' | '.join(r)} |" for r in rows]


def test_a_row_longer_than_the_budget_is_a_chunk_of_its_own_not_cut() -> None:
    rows = [["short", "a"], ["long", "x" * 900], ["short again", "b"]]
    passages = table_passages(["k", "v"], rows, max_chars=200)
    assert any("x" * 900 in p for p in passages)
    assert all(p.startswith("| k | v |") for p in passages)


def test_chunks_keep_document_title_section_and_url_for_citations() -> None:
    document = Document(
        id="manual",
        title="Kettle manual",
        url="https://acme.example/kettle",
        blocks=[
            Block(kind="text", section="Cleaning", text="Descale monthly with citric acid."),
            Block(kind="table", section="Specs", header=["Volume", "Power"], rows=[["1.7 l", "2200 W"]]),
            Block(kind="qa", section="FAQ: Is it BPA free?", questions=["Is it BPA free?"], text="Yes."),
        ],
    )
    chunks = chunk_document(document)
    assert [(c.kind, c.section, c.ordinal) for c in chunks] == [
        ("text", "Cleaning", 0),
        ("table", "Specs", 1),
        ("qa", "FAQ: Is it BPA free?", 2),
    ]
    assert all((c.document_id, c.title, c.url) == ("manual", "Kettle manual", document.url) for c in chunks)
    assert chunks[0].leads == ("Kettle manual: Cleaning",)


def test_plain_text_and_blocks_together() -> None:
    document = Document(id="d", title="T", text="Intro text.", blocks=[Block(kind="text", text="More.", section="S")])
    assert [c.text for c in chunk_document(document)] == ["Intro text.", "More."]


@pytest.mark.parametrize(
    "block",
    [
        {"kind": "qa", "questions": [], "text": "answer"},
        {"kind": "qa", "questions": ["  "], "text": "answer"},
        {"kind": "table", "header": ["a"], "rows": []},
        {"kind": "text", "text": "  "},
        {"kind": "image", "text": "x"},
    ],
)
def test_incomplete_blocks_are_refused(block: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Document.model_validate({"id": "d", "title": "T", "blocks": [block]})


def test_a_document_needs_text_or_blocks() -> None:
    with pytest.raises(ValidationError, match="text or blocks"):
        Document(id="d", title="T")


# --- the index and multi-phrasing FAQ entries ---


@pytest.fixture
def index(tmp_path: Path) -> LocalHybridIndex:
    return LocalHybridIndex(tmp_path, FakeEmbedder())


FAQ = Document(
    id="faq",
    title="Shop FAQ",
    blocks=[
        Block(
            kind="qa",
            questions=["How long does delivery take?", "When will my parcel arrive?", "shipping time"],
            text="Two to four working days.",
        ),
        Block(kind="qa", questions=["Can I pay with WeChat?"], text="Yes, WeChat Pay and Alipay."),
    ],
)


def test_any_phrasing_of_a_question_finds_its_pair_once(index: LocalHybridIndex) -> None:
    result = index.index("acme", [FAQ])
    assert (result.documents, result.chunks) == (1, 2)
    for question in ("when will my parcel arrive", "what is the shipping time", "how long does delivery take"):
        passages = index.search("acme", question, 5)
        assert passages[0].text == "How long does delivery take?\nTwo to four working days.", question
        assert passages[0].section == "How long does delivery take?"
        # one passage per chunk, although the pair is indexed under three phrasings
        assert len(passages) == 2 and len({p.text for p in passages}) == 2


def test_search_uses_the_given_keyword_weight(index: LocalHybridIndex) -> None:
    index.index("acme", [FAQ])
    keyword_only = index.search("acme", "parcel", 2, keyword_weight=1.0)
    dense_only = index.search("acme", "parcel", 2, keyword_weight=0.0)
    assert keyword_only[0].section == "How long does delivery take?"
    assert keyword_only[1].score == 0.0  # no keyword evidence for the other pair
    assert [p.score for p in keyword_only] != [p.score for p in dense_only]


def test_version_changes_on_every_write_and_samples_are_the_faq_questions(index: LocalHybridIndex) -> None:
    assert index.version("acme") == "empty"
    first = index.index("acme", [FAQ]).version
    assert first == index.version("acme") != "empty"
    second = index.index("acme", [FAQ]).version  # the same content again is a new write
    assert second != first
    index.delete_document("acme", "faq")
    assert index.version("acme") not in (first, second, "empty")
    index.index("acme", [FAQ])
    questions = index.sample_questions("acme", 10)
    assert questions[:4] == [
        "How long does delivery take?",
        "When will my parcel arrive?",
        "shipping time",
        "Can I pay with WeChat?",
    ]
    assert len(index.sample_questions("acme", 2)) == 2
