"""LocalHybridIndex: index/search/replace/delete, persistence, reload, atomic writes, tenant isolation."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest

from shared.errors import BadRequest
from shared.knowledge.base import Document, Embedder
from shared.knowledge.local_index import MANIFEST, LocalHybridIndex
from shared.knowledge.text import tokenize


class FakeEmbedder(Embedder):
    """Deterministic bag-of-words vectors (hashed tokens): texts sharing words are similar."""

    dimension = 512

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        rows = []
        for text in texts:
            vector = np.zeros(self.dimension, dtype=np.float32)
            for token in tokenize(text) or ["<empty>"]:
                vector[int(hashlib.sha1(token.encode()).hexdigest(), 16) % self.dimension] += 1.0
            rows.append((vector / np.linalg.norm(vector)).tolist())
        return rows


DOCS = [
    Document(id="returns", title="Return policy", text="Return items within 30 days for a refund.", url="https://s.example/r"),
    Document(id="shipping", title="Shipping times", text="Standard delivery takes 2 to 4 working days."),
    Document(id="invoice", title="发票", text="下单时勾选开具发票，电子发票会发送到您的邮箱。"),
]


@pytest.fixture
def index(tmp_path: Path) -> LocalHybridIndex:
    return LocalHybridIndex(tmp_path, FakeEmbedder())


def test_search_finds_the_matching_document_with_citation_fields(index: LocalHybridIndex) -> None:
    result = index.index("acme", DOCS)
    assert (result.documents, result.chunks) == (3, 3)
    passages = index.search("acme", "how many days do I have to return an item?", 2)
    assert passages[0].document_id == "returns"
    assert passages[0].title == "Return policy"
    assert passages[0].url == "https://s.example/r"
    assert "30 days" in passages[0].text
    assert all(0.0 <= p.score <= 1.0 for p in passages)
    assert passages[0].score > passages[1].score


def test_chinese_query_finds_chinese_document(index: LocalHybridIndex) -> None:
    index.index("acme", DOCS)
    assert index.search("acme", "怎么开电子发票？", 1)[0].document_id == "invoice"


def test_k_limits_results_and_empty_cases_return_nothing(index: LocalHybridIndex) -> None:
    assert index.search("acme", "refund", 3) == []  # tenant without an index
    index.index("acme", DOCS)
    assert len(index.search("acme", "refund", 1)) == 1
    assert len(index.search("acme", "refund", 10)) == 3
    assert index.search("acme", "   ", 3) == []
    assert index.search("acme", "refund", 0) == []


def test_reindexing_a_document_replaces_its_chunks(index: LocalHybridIndex) -> None:
    index.index("acme", DOCS)
    long_text = " ".join(f"Parcels sent abroad, rule {n}, arrive within two weeks." for n in range(60))
    result = index.index("acme", [Document(id="shipping", title="International shipping", text=long_text)])
    assert result.documents == 1 and result.chunks > 1
    passages = index.search("acme", "parcels abroad", 50)
    shipping = [p for p in passages if p.document_id == "shipping"]
    assert len(shipping) == result.chunks
    assert all(p.title == "International shipping" for p in shipping)
    assert not any("working days" in p.text for p in passages)  # the old chunk is gone
    # shrinking back to one chunk leaves no stale chunks behind
    index.index("acme", [Document(id="shipping", title="Shipping times", text="Delivery takes 3 days.")])
    assert len([p for p in index.search("acme", "delivery", 50) if p.document_id == "shipping"]) == 1
    assert len(index.search("acme", "delivery", 50)) == 3


def test_delete_document(index: LocalHybridIndex) -> None:
    index.index("acme", DOCS)
    assert index.delete_document("acme", "returns") is True
    assert index.delete_document("acme", "returns") is False
    assert index.delete_document("other", "returns") is False
    assert {p.document_id for p in index.search("acme", "return refund", 10)} == {"shipping", "invoice"}
    assert index.delete_document("acme", "shipping") and index.delete_document("acme", "invoice")
    assert index.search("acme", "return refund", 10) == []


def test_tenants_are_isolated(index: LocalHybridIndex) -> None:
    index.index("acme", DOCS[:1])
    index.index("globex", [Document(id="returns", title="Globex returns", text="No returns at Globex.")])
    assert [p.title for p in index.search("acme", "returns", 10)] == ["Return policy"]
    assert [p.title for p in index.search("globex", "returns", 10)] == ["Globex returns"]
    index.delete_document("globex", "returns")
    assert [p.title for p in index.search("acme", "returns", 10)] == ["Return policy"]


@pytest.mark.parametrize("tenant_id", ["../evil", "..", ".", "a/b", "a\\b", "", "-x", ".hidden", "a" * 200, "x\x00"])
def test_unsafe_tenant_ids_are_rejected_everywhere(index: LocalHybridIndex, tmp_path: Path, tenant_id: str) -> None:
    with pytest.raises(BadRequest, match="invalid tenant id"):
        index.index(tenant_id, DOCS)
    with pytest.raises(BadRequest):
        index.search(tenant_id, "refund", 3)
    with pytest.raises(BadRequest):
        index.delete_document(tenant_id, "returns")
    assert list(tmp_path.parent.glob("evil*")) == []
    assert list(tmp_path.iterdir()) == []


def test_the_index_persists_and_another_instance_reads_it(tmp_path: Path) -> None:
    LocalHybridIndex(tmp_path, FakeEmbedder()).index("acme", DOCS)
    reader = LocalHybridIndex(tmp_path, FakeEmbedder())
    assert reader.search("acme", "refund within 30 days", 1)[0].document_id == "returns"
    files = sorted(p.name for p in (tmp_path / "acme").iterdir())
    assert MANIFEST in files
    assert any(f.startswith("chunks-") for f in files) and any(f.startswith("vectors-") for f in files)


def test_a_reader_reloads_when_another_writer_changes_the_index(tmp_path: Path) -> None:
    writer = LocalHybridIndex(tmp_path, FakeEmbedder())
    reader = LocalHybridIndex(tmp_path, FakeEmbedder())
    writer.index("acme", DOCS)
    assert reader.search("acme", "warranty", 1)[0].document_id != "warranty"  # loads and caches
    writer.index("acme", [Document(id="warranty", title="Warranty", text="Electronics have a 1-year warranty.")])
    assert reader.search("acme", "warranty", 1)[0].document_id == "warranty"
    writer.delete_document("acme", "warranty")
    assert all(p.document_id != "warranty" for p in reader.search("acme", "warranty", 10))


def test_a_writer_starting_from_a_stale_cache_keeps_the_other_writers_documents(tmp_path: Path) -> None:
    first = LocalHybridIndex(tmp_path, FakeEmbedder())
    second = LocalHybridIndex(tmp_path, FakeEmbedder())
    first.index("acme", DOCS[:1])
    second.search("acme", "x", 1)  # second caches the one-document generation
    first.index("acme", DOCS[1:2])
    second.index("acme", DOCS[2:])
    assert {p.document_id for p in first.search("acme", "anything", 10)} == {"returns", "shipping", "invoice"}


def test_a_crash_while_writing_leaves_the_previous_index_intact(
    index: LocalHybridIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index.index("acme", DOCS)
    manifest_before = (tmp_path / "acme" / MANIFEST).read_bytes()

    def crash(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        index.index("acme", [Document(id="new", title="New", text="Brand new document.")])
    monkeypatch.undo()

    assert (tmp_path / "acme" / MANIFEST).read_bytes() == manifest_before
    fresh = LocalHybridIndex(tmp_path, FakeEmbedder())
    assert {p.document_id for p in fresh.search("acme", "document", 10)} == {"returns", "shipping", "invoice"}
    # the next successful write cleans up what the crashed one left behind
    index.index("acme", [Document(id="new", title="New", text="Brand new document.")])
    leftovers = [p.name for p in (tmp_path / "acme").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers == []


def test_old_generations_are_removed_but_the_previous_one_is_kept(index: LocalHybridIndex, tmp_path: Path) -> None:
    for n in range(4):
        index.index("acme", [Document(id=f"d{n}", title=f"Doc {n}", text=f"Text {n}.")])
    chunk_files = list((tmp_path / "acme").glob("chunks-*.json"))
    vector_files = list((tmp_path / "acme").glob("vectors-*.npy"))
    assert len(chunk_files) == 2 and len(vector_files) == 2
    current = json.loads((tmp_path / "acme" / MANIFEST).read_text())["version"]
    assert (tmp_path / "acme" / f"chunks-{current}.json").exists()


def test_an_index_built_with_another_dimension_is_reported_not_misread(tmp_path: Path) -> None:
    LocalHybridIndex(tmp_path, FakeEmbedder()).index("acme", DOCS)

    class OtherEmbedder(FakeEmbedder):
        dimension = 256

    with pytest.raises(Exception, match="re-index"):
        LocalHybridIndex(tmp_path, OtherEmbedder()).search("acme", "refund", 1)


def test_query_is_embedded_once_per_search(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    index = LocalHybridIndex(tmp_path, embedder)
    index.index("acme", DOCS)
    embedder.calls.clear()
    index.search("acme", "refund", 3)
    assert embedder.calls == [["refund"]]


def test_writes_are_atomic_renames(index: LocalHybridIndex, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    replaced: list[str] = []
    real_replace = os.replace

    def spy(src: str, dst: str | Path) -> None:
        replaced.append(Path(dst).name)
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spy)
    index.index("acme", DOCS)
    assert replaced[-1] == MANIFEST  # the manifest switches last, after the generation is complete
    assert any(name.startswith("chunks-") for name in replaced[:-1])
    assert any(name.startswith("vectors-") for name in replaced[:-1])
