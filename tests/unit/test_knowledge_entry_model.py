"""The FAQ entry model: fitted from a tenant's FAQ phrasings, it lowers the score of questions that do
not single out one entry, and the embedded index keeps it in step with every write."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from shared.knowledge.base import Block, Document, Embedder
from shared.knowledge.entry_classifier import (
    EntryModel,
    apply_entry_confidence,
    fit_entry_model,
    worth_fitting,
)
from shared.knowledge.local_index import MANIFEST, LocalHybridIndex
from shared.knowledge.text import tokenize


class FakeEmbedder(Embedder):
    """Deterministic bag-of-words vectors (hashed tokens): texts sharing words are similar."""

    dimension = 512

    def __init__(self) -> None:
        self.texts_embedded = 0

    def embed(self, texts: list[str]) -> list[list[float]]:
        self.texts_embedded += len(texts)
        rows = []
        for text in texts:
            vector = np.zeros(self.dimension, dtype=np.float32)
            for token in tokenize(text) or ["<empty>"]:
                vector[int(hashlib.sha1(token.encode()).hexdigest(), 16) % self.dimension] += 1.0
            rows.append((vector / np.linalg.norm(vector)).tolist())
        return rows


FAQ = {
    "refund": ["how do I get a refund?", "refund my order", "I want my money back", "can I return this for a refund"],
    "delivery": ["when will my order arrive?", "delivery time", "how long does shipping take", "track my delivery"],
    "password": ["I forgot my password", "reset password", "cannot log in to my account", "change my password"],
}
ZH_FAQ = {
    "发票": ["怎么开发票", "发票什么时候寄出", "电子发票在哪里下载"],
    "退货": ["怎么退货", "退货运费谁出", "七天无理由退货吗"],
}


def faq_document(entry: str, phrasings: list[str]) -> Document:
    return Document(
        id=entry, title=entry, blocks=[Block(kind="qa", questions=phrasings, text=f"Answer about {entry}.")]
    )


def fit(faq: dict[str, list[str]], embedder: Embedder) -> EntryModel:
    phrasings = [p for ps in faq.values() for p in ps]
    labels = [n for n, ps in enumerate(faq.values()) for _ in ps]
    model = fit_entry_model(embedder.embed_matrix(phrasings), [tokenize(p) for p in phrasings], labels)
    assert model is not None
    return model


def probabilities(model: EntryModel, embedder: Embedder, question: str) -> np.ndarray:
    return model.probabilities(embedder.embed_query(question), tokenize(question))


@pytest.mark.parametrize("faq", [FAQ, ZH_FAQ], ids=["english", "chinese"])
def test_the_model_places_an_unseen_paraphrase_on_its_entry(faq: dict[str, list[str]]) -> None:
    embedder = FakeEmbedder()
    model = fit(faq, embedder)
    assert model.entries == len(faq)
    questions = (
        {"refund": "refund for my order please", "password": "reset my account password"}
        if faq is FAQ
        else {"发票": "发票寄出了吗", "退货": "退货运费"}
    )
    names = list(faq)
    for entry, question in questions.items():
        p = probabilities(model, embedder, question)
        assert names[int(p.argmax())] == entry
        assert p.sum() == pytest.approx(1.0, abs=1e-5)


def test_a_question_that_singles_out_no_entry_gets_a_lower_probability() -> None:
    embedder = FakeEmbedder()
    model = fit(FAQ, embedder)
    placed = probabilities(model, embedder, "reset my password please").max()
    unplaced = probabilities(model, embedder, "what is the weather like in Paris").max()
    assert placed > 0.6
    assert unplaced < placed - 0.2


def test_no_model_without_paraphrases_or_with_a_single_entry() -> None:
    assert not worth_fitting(phrasings=3, entries=3)  # one phrasing per entry: nothing beyond the ranking
    assert not worth_fitting(phrasings=5, entries=1)
    assert worth_fitting(phrasings=4, entries=3)
    embedder = FakeEmbedder()
    vectors = embedder.embed_matrix(["a b", "c d"])
    assert fit_entry_model(vectors, [["a", "b"], ["c", "d"]], [0, 1]) is None
    assert fit_entry_model(vectors[:0], [], []) is None


def test_confidence_scales_only_faq_rows_by_the_square_root_of_their_entry_probability() -> None:
    scores = np.asarray([0.8, 0.6, 0.5, 0.9], dtype=np.float32)
    row_entries = np.asarray([0, 0, 1, -1], dtype=np.int64)  # the last row is prose: no entry
    p = np.asarray([0.25, 0.75], dtype=np.float32)
    adjusted = apply_entry_confidence(scores, row_entries, p)
    assert adjusted == pytest.approx([0.8 * 0.5, 0.6 * 0.5, 0.5 * np.sqrt(0.75), 0.9], abs=1e-6)
    assert scores[0] == pytest.approx(0.8)  # the input is not modified
    assert apply_entry_confidence(scores, row_entries, p, exponent=0.0) is scores


def test_model_round_trips_through_arrays() -> None:
    embedder = FakeEmbedder()
    model = fit(FAQ, embedder)
    with_strings = {name: np.asarray(value) for name, value in model.to_arrays().items()}
    again = EntryModel.from_arrays(with_strings)
    question = "when does my delivery arrive"
    assert probabilities(again, embedder, question) == pytest.approx(probabilities(model, embedder, question))


# --- in the embedded index ------------------------------------------------------------------------------


def manifest(root: Path, tenant: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((root / tenant / MANIFEST).read_text())
    return loaded


def test_index_fits_the_model_on_write_and_it_lowers_questions_no_entry_answers(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    index = LocalHybridIndex(tmp_path, embedder)
    plain = LocalHybridIndex(tmp_path / "plain", embedder)
    documents = [faq_document(entry, phrasings) for entry, phrasings in FAQ.items()]
    index.index("acme", documents)
    # The same FAQ with one phrasing per entry: no paraphrases, so no model and plain fused scores.
    plain.index("acme", [faq_document(entry, phrasings[:1]) for entry, phrasings in FAQ.items()])
    assert manifest(tmp_path, "acme")["entryModel"] is True
    assert list((tmp_path / "acme").glob("entries-*.npz"))
    assert manifest(tmp_path / "plain", "acme")["entryModel"] is False

    hit = index.search("acme", "I forgot my password, how do I reset it", 3)
    assert hit[0].document_id == "password"
    assert hit[0].score > hit[1].score
    vague = index.search("acme", "my order account", 1)[0]
    assert vague.score < hit[0].score
    # A fresh process reads the stored model and scores the same.
    reloaded = LocalHybridIndex(tmp_path, FakeEmbedder())
    assert reloaded.search("acme", "my order account", 1)[0].score == vague.score


def test_prose_keeps_its_fused_score_next_to_a_modelled_faq(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    index = LocalHybridIndex(tmp_path, embedder)
    prose = Document(id="guide", title="Gift cards", text="Gift cards never expire and work in every store.")
    index.index("acme", [prose, *(faq_document(e, p) for e, p in FAQ.items())])
    question = "do gift cards expire? refund or password"
    with_model = {p.document_id: p.score for p in index.search("acme", question, 4)}
    generation = index._load("acme", index._tenant_dir("acme"))
    assert generation.entries is not None
    generation.entries = None  # the same rows and BM25 statistics, scored without the model
    fused = {p.document_id: p.score for p in index.search("acme", question, 4)}
    assert with_model["guide"] == fused["guide"] > 0
    assert with_model["refund"] < fused["refund"]


def test_deleting_and_replacing_entries_refits_without_embedding_phrasings_again(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    index = LocalHybridIndex(tmp_path, embedder)
    index.index("acme", [faq_document(entry, phrasings) for entry, phrasings in FAQ.items()])
    embedded = embedder.texts_embedded
    assert index.delete_document("acme", "delivery")
    assert embedder.texts_embedded == embedded  # kept phrasings' vectors come from the stored model
    generation = index._load("acme", index._tenant_dir("acme"))
    assert generation.entries is not None and generation.entries.model.entries == 2
    assert len(list((tmp_path / "acme").glob("entries-*.npz"))) == 2  # this generation and the previous one
    assert index.search("acme", "reset my password", 1)[0].document_id == "password"
    # Down to one entry there is nothing to tell apart: the model goes, scores are the fused ones.
    assert index.delete_document("acme", "refund")
    assert manifest(tmp_path, "acme")["entryModel"] is False
    assert index._load("acme", index._tenant_dir("acme")).entries is None


def test_an_index_written_without_a_model_gets_one_when_paraphrases_arrive(tmp_path: Path) -> None:
    embedder = FakeEmbedder()
    index = LocalHybridIndex(tmp_path, embedder)
    index.index("acme", [faq_document("refund", FAQ["refund"])])  # one entry: no model yet
    assert manifest(tmp_path, "acme")["entryModel"] is False
    index.index("acme", [faq_document("password", FAQ["password"])])
    assert manifest(tmp_path, "acme")["entryModel"] is True
    generation = index._load("acme", index._tenant_dir("acme"))
    assert generation.entries is not None
    assert sorted(set(generation.entries.row_entries.tolist())) == [0, 1]
    assert index.search("acme", "refund my order", 1)[0].document_id == "refund"


def test_a_faq_too_large_to_fit_on_every_write_keeps_fused_scores_and_costs_no_extra_embedding(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("shared.knowledge.entry_classifier.MAX_FIT_COST", 1000.0)
    embedder = FakeEmbedder()
    index = LocalHybridIndex(tmp_path, embedder)
    documents = [faq_document(entry, phrasings) for entry, phrasings in FAQ.items()]
    index.index("acme", documents[:2])
    assert manifest(tmp_path, "acme")["entryModel"] is False
    before = embedder.texts_embedded
    index.index("acme", documents[2:])
    # Only the new entry's phrasings and answer text: the stored entries' phrasings are not re-embedded.
    assert embedder.texts_embedded - before == len(FAQ["password"]) + 1
    assert manifest(tmp_path, "acme")["entryModel"] is False
    assert index.search("acme", "reset my password", 1)[0].document_id == "password"
