"""OpenSearchIndex against a live cluster. Skipped unless KEFU_TEST_OPENSEARCH_URL is set, e.g.

    KEFU_TEST_OPENSEARCH_URL=http://localhost:9200 pytest tests/integration/test_knowledge_opensearch.py

(an OpenSearch 2.x with the k-NN plugin, security disabled; an https AWS endpoint is SigV4-signed with
the ambient AWS credentials, KEFU_AWS_REGION and KEFU_OPENSEARCH_SERVICE).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from shared.knowledge.base import Document
from shared.knowledge.opensearch_index import OpenSearchIndex, build_client
from shared.knowledge.use_embedder import shared_embedder
from shared.settings import Settings

URL = os.environ.get("KEFU_TEST_OPENSEARCH_URL")
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not URL, reason="KEFU_TEST_OPENSEARCH_URL is not set (no OpenSearch to test against)"),
]
DEMO_FAQ = Path(__file__).resolve().parents[2] / "local" / "demo" / "faq.json"


@pytest.fixture
def client() -> Any:
    return build_client(Settings(knowledge_backend="opensearch", opensearch_endpoint=URL))


@pytest.fixture
def index(client: Any) -> Iterator[OpenSearchIndex]:
    name = f"kefu-test-{uuid.uuid4().hex[:8]}"
    # refresh=True: a test reads its own writes at once (OpenSearch Serverless would reject it).
    yield OpenSearchIndex(client, name, shared_embedder(), refresh=True)
    client.indices.delete(index=name, ignore=[404])


def demo_documents() -> list[Document]:
    return [Document.model_validate(item) for item in json.loads(DEMO_FAQ.read_text(encoding="utf-8"))]


def test_hybrid_search_finds_demo_answers_in_both_languages(index: OpenSearchIndex) -> None:
    index.index("demo", demo_documents())
    english = index.search("demo", "Can I pay with WeChat?", 3)
    chinese = index.search("demo", "退款什么时候到账", 3)
    assert "payment-methods" in {p.document_id for p in english}
    assert chinese[0].document_id == "refunds-zh"
    assert all(0.0 <= p.score <= 1.0 for p in english + chinese)
    assert index.search("demo", "How do I bake sourdough bread?", 1)[0].score < Settings().min_answer_score


def test_tenants_never_see_each_other(index: OpenSearchIndex) -> None:
    index.index("acme", [Document(id="returns", title="Acme returns", text="Acme accepts returns for 30 days.")])
    index.index("globex", [Document(id="returns", title="Globex returns", text="Globex accepts no returns.")])
    assert {p.title for p in index.search("acme", "returns", 10)} == {"Acme returns"}
    assert {p.title for p in index.search("globex", "returns", 10)} == {"Globex returns"}
    assert index.delete_document("globex", "returns") is True
    assert index.search("globex", "returns", 10) == []
    assert {p.title for p in index.search("acme", "returns", 10)} == {"Acme returns"}


def test_reindexing_replaces_and_delete_removes(index: OpenSearchIndex) -> None:
    index.index("acme", [Document(id="ship", title="Shipping", text="Delivery takes 5 days.")])
    index.index("acme", [Document(id="ship", title="Shipping", text="Delivery now takes 2 days.")])
    passages = index.search("acme", "delivery days", 10)
    assert [p.text for p in passages] == ["Delivery now takes 2 days."]
    assert index.delete_document("acme", "ship") is True
    assert index.delete_document("acme", "ship") is False
    assert index.search("acme", "delivery days", 10) == []


def test_version_follows_every_change_and_faq_phrasings_collapse(index: OpenSearchIndex) -> None:
    from shared.knowledge.base import Block

    assert index.version("acme") == "empty"
    faq = Document(
        id="faq",
        title="FAQ",
        blocks=[Block(kind="qa", questions=["How long is delivery?", "When does my parcel come?"], text="3 days.")],
    )
    first = index.index("acme", [faq]).version
    assert first != "empty" and index.version("acme") == first
    passages = index.search("acme", "when does my parcel come", 10)
    assert [p.section for p in passages] == ["How long is delivery?"]  # two rows, one passage
    second = index.index("acme", [faq]).version
    assert second != first
    assert index.delete_document("acme", "faq") is True
    assert index.version("acme") == "empty"
