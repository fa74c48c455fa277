"""The OpenSearch adapter with the real opensearch-py client against a local HTTP server that answers
with recorded OpenSearch responses (tests/fixtures/knowledge/opensearch/) and records what it was sent:
index creation, bulk indexing, hybrid search, version, deletes, errors, and SigV4 signing."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pytest

from shared.errors import UpstreamError
from shared.knowledge.base import Block, Document, Embedder
from shared.knowledge.opensearch_index import OpenSearchIndex, build_client, index_body
from shared.settings import Settings

pytestmark = pytest.mark.integration
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "knowledge" / "opensearch"
INDEX = "kefu-knowledge"


class EightDimensions(Embedder):
    """Vectors the recorded responses were made with: 'refund' points one way, the rest another."""

    dimension = 8

    def embed(self, texts: list[str]) -> list[list[float]]:
        return [[0.6, 0.8, 0, 0, 0, 0, 0, 0] if "refund" in t.lower() else [0, 0, 1.0, 0, 0, 0, 0, 0] for t in texts]


class RecordedOpenSearch(ThreadingHTTPServer):
    """Answers each request with the next recorded response queued for its (method, path)."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: dict[tuple[str, str], list[tuple[int, str | None]]] = {}
        self.requests: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def answer(self, method: str, path: str, status: int, fixture: str | None = None) -> None:
        self.script.setdefault((method, path), []).append((status, fixture))

    def sent(self, method: str, path: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if (r["method"], r["path"]) == (method, path)]


class _Handler(BaseHTTPRequestHandler):
    server: RecordedOpenSearch

    def log_message(self, *args: Any) -> None:
        pass

    def _handle(self) -> None:
        url = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        self.server.requests.append(
            {
                "method": self.command,
                "path": url.path,
                "params": parse_qs(url.query),
                "headers": dict(self.headers),
                "lines": [json.loads(line) for line in raw.splitlines() if line.strip()],
            }
        )
        queue = self.server.script.get((self.command, url.path))
        status, fixture = queue.pop(0) if queue else (500, None)
        data = (FIXTURES / fixture).read_bytes() if fixture else b""
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _handle


@pytest.fixture
def cluster() -> Iterator[RecordedOpenSearch]:
    server = RecordedOpenSearch()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def index(cluster: RecordedOpenSearch) -> OpenSearchIndex:
    client = build_client(Settings(knowledge_backend="opensearch", opensearch_endpoint=cluster.url))
    return OpenSearchIndex(client, INDEX, EightDimensions())


def tenant_filters(node: Any) -> list[str]:
    found = []
    if isinstance(node, dict):
        if isinstance(node.get("term"), dict) and "tenant_id" in node["term"]:
            found.append(node["term"]["tenant_id"])
        for value in node.values():
            found.extend(tenant_filters(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(tenant_filters(value))
    return found


RECORDED_VERSION = "os-" + hashlib.sha256(b"6:9503953158:1795300000000").hexdigest()[:20]
FAQ = Document(
    id="faq.csv",
    title="faq",
    url="https://acme.example/faq",
    blocks=[
        Block(kind="qa", questions=["How do I get a refund?", "money back"], text="Refunds are paid within 5 days."),
        Block(kind="table", header=["model", "price"], rows=[["K1", "39"]]),
    ],
)


def test_first_write_creates_the_index_bulk_indexes_rows_and_replaces_older_ones(
    cluster: RecordedOpenSearch, index: OpenSearchIndex
) -> None:
    cluster.answer("HEAD", f"/{INDEX}", 404)
    cluster.answer("PUT", f"/{INDEX}", 200, "create_index.json")
    cluster.answer("POST", "/_bulk", 200, "bulk_ok.json")
    cluster.answer("POST", f"/{INDEX}/_delete_by_query", 200, "delete_by_query.json")
    cluster.answer("POST", "/_msearch", 200, "msearch_version.json")

    result = index.index("acme", [FAQ])
    assert (result.documents, result.chunks, result.version) == (1, 2, RECORDED_VERSION)

    (create,) = cluster.sent("PUT", f"/{INDEX}")
    assert create["lines"] == [index_body(8)]
    (bulk,) = cluster.sent("POST", "/_bulk")
    actions, rows = bulk["lines"][::2], bulk["lines"][1::2]
    assert actions == [{"index": {"_index": INDEX}}] * 3  # no custom _id: Serverless vector collections refuse them
    assert [(r["chunk"], r["kind"], r["lead"]) for r in rows] == [
        (0, "qa", "How do I get a refund?"),
        (0, "qa", "money back"),  # the other phrasing: a second row of the same chunk
        (1, "table", "faq"),
    ]
    assert all(r["tenant_id"] == "acme" and r["document_id"] == "faq.csv" for r in rows)
    assert len({r["generation"] for r in rows}) == 1 and len({r["stamp"] for r in rows}) == 1
    assert rows[2]["text"] == "| model | price |\n| K1 | 39 |" and rows[0]["section"] == "How do I get a refund?"
    assert len(rows[0]["embedding"]) == 8 and rows[0]["tokens"].split()[0] == "refund"
    (delete,) = cluster.sent("POST", f"/{INDEX}/_delete_by_query")
    query = delete["lines"][0]["query"]["bool"]
    assert query["must_not"] == [{"term": {"generation": rows[0]["generation"]}}]
    assert tenant_filters(delete["lines"]) == ["acme"] and "refresh" not in delete["params"]


def test_hybrid_search_fuses_recorded_hits_collapses_rows_and_reads_the_version(
    cluster: RecordedOpenSearch, index: OpenSearchIndex
) -> None:
    cluster.answer("POST", "/_msearch", 200, "msearch_hybrid.json")
    hits = index.search_hits("acme", "How do I get my refund in days?", 3)
    assert hits.version == RECORDED_VERSION
    assert [p.document_id for p in hits.passages] == ["faq.csv", "manual.pdf", "prices.csv"]  # faq once, not twice
    first = hits.passages[0]
    assert (first.section, first.url) == ("How do I get a refund?", "https://acme.example/faq")
    assert first.score > hits.passages[1].score > hits.passages[2].score >= 0.0
    assert all(0.0 <= p.score <= 1.0 for p in hits.passages)

    (request,) = cluster.sent("POST", "/_msearch")
    headers, bodies = request["lines"][::2], request["lines"][1::2]
    assert headers == [{"index": INDEX}] * 3
    keyword, knn, version = bodies
    assert (
        keyword["explain"] is True and keyword["query"]["bool"]["must"][0]["match"]["tokens"]["query"] == "refund day"
    )
    assert knn["query"]["knn"]["embedding"]["vector"] == pytest.approx([0.6, 0.8, 0, 0, 0, 0, 0, 0])
    assert knn["query"]["knn"]["embedding"]["k"] == knn["size"] >= 12  # rows, not chunks: fetched deeper
    assert version["size"] == 0 and version["track_total_hits"] is True
    assert tenant_filters(bodies) == ["acme", "acme", "acme"]  # tenant isolation on every query


def test_the_tenant_weight_moves_scores(cluster: RecordedOpenSearch, index: OpenSearchIndex) -> None:
    cluster.answer("POST", "/_msearch", 200, "msearch_hybrid.json")
    cluster.answer("POST", "/_msearch", 200, "msearch_hybrid.json")
    keyword_heavy = index.search("acme", "How do I get my refund in days?", 3, keyword_weight=0.9)
    dense_heavy = index.search("acme", "How do I get my refund in days?", 3, keyword_weight=0.1)
    assert keyword_heavy[1].score < dense_heavy[1].score  # manual.pdf has no keyword evidence


def test_a_missing_index_is_an_empty_knowledge_base(cluster: RecordedOpenSearch, index: OpenSearchIndex) -> None:
    cluster.answer("POST", "/_msearch", 200, "msearch_index_missing.json")
    hits = index.search_hits("acme", "refund", 3)
    assert hits.passages == [] and hits.version == "empty"
    cluster.answer("POST", "/_msearch", 200, "msearch_version_empty.json")
    assert index.version("acme") == "empty"


def test_a_rejected_bulk_removes_the_partial_generation_and_says_why(
    cluster: RecordedOpenSearch, index: OpenSearchIndex
) -> None:
    cluster.answer("HEAD", f"/{INDEX}", 200)
    cluster.answer("POST", "/_bulk", 200, "bulk_error.json")
    cluster.answer("POST", f"/{INDEX}/_delete_by_query", 200, "delete_by_query.json")
    with pytest.raises(UpstreamError, match="mapper_parsing_exception"):
        index.index("acme", [FAQ])
    (cleanup,) = cluster.sent("POST", f"/{INDEX}/_delete_by_query")
    filters = cleanup["lines"][0]["query"]["bool"]["filter"]
    generation = cluster.sent("POST", "/_bulk")[0]["lines"][1]["generation"]
    assert {"term": {"generation": generation}} in filters and {"term": {"tenant_id": "acme"}} in filters


def test_delete_reports_whether_anything_was_deleted(cluster: RecordedOpenSearch, index: OpenSearchIndex) -> None:
    cluster.answer("POST", f"/{INDEX}/_delete_by_query", 200, "delete_by_query.json")
    cluster.answer("POST", f"/{INDEX}/_delete_by_query", 200, "delete_by_query_none.json")
    assert index.delete_document("acme", "faq.csv") is True
    assert index.delete_document("acme", "faq.csv") is False
    bodies = [r["lines"][0] for r in cluster.sent("POST", f"/{INDEX}/_delete_by_query")]
    assert all(tenant_filters(b) == ["acme"] for b in bodies)


def test_requests_are_sigv4_signed_for_serverless(cluster: RecordedOpenSearch, monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from opensearchpy import OpenSearch, RequestsAWSV4SignerAuth, RequestsHttpConnection

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    host, port = cluster.server_address[:2]
    # The same auth build_client uses for an https AWS endpoint, pointed at the local server.
    auth = RequestsAWSV4SignerAuth(boto3.Session().get_credentials(), "eu-west-1", "aoss")
    client = OpenSearch(hosts=[{"host": host, "port": port}], http_auth=auth, connection_class=RequestsHttpConnection)
    cluster.answer("POST", "/_msearch", 200, "msearch_hybrid.json")
    OpenSearchIndex(client, INDEX, EightDimensions()).search("acme", "refund", 3)
    headers = cluster.requests[-1]["headers"]
    assert headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert "/eu-west-1/aoss/aws4_request" in headers["Authorization"]
    # Serverless needs the payload hash header on signed requests with a body.
    body_hash = headers.get("x-amz-content-sha256") or headers.get("X-Amz-Content-SHA256")
    assert body_hash and len(body_hash) == 64


def test_fixture_vectors_match_the_test_embedder() -> None:
    recorded = json.loads((FIXTURES / "msearch_hybrid.json").read_text())
    stored = recorded["responses"][0]["hits"]["hits"][0]["_source"]["embedding"]
    assert np.allclose(stored, EightDimensions().embed(["refund"])[0])
