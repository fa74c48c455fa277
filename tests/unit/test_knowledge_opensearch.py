"""OpenSearchIndex: the request bodies it builds (no server: a fake client and a fake connection)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

from shared.errors import BadRequest, UpstreamError
from shared.knowledge.opensearch_index import (
    OpenSearchIndex,
    build_client,
    index_body,
    inner_product_from_score,
    keyword_ratios_from_hits,
    parse_explanation,
)
from shared.knowledge.scoring import bm25_idf
from shared.knowledge.text import tokenize
from shared.settings import Settings
from tests.unit.test_knowledge_local_index import DOCS, FakeEmbedder

INDEX = "kefu-knowledge-test"
EMPTY: dict[str, Any] = {"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}}


class FakeIndices:
    def __init__(self) -> None:
        self.existing: set[str] = set()
        self.created: list[tuple[str, dict[str, Any]]] = []

    def exists(self, index: str) -> bool:
        return index in self.existing

    def create(self, index: str, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append((index, body))
        self.existing.add(index)
        return {"acknowledged": True}


class FakeOpenSearchClient:
    """Records every request; search responses are queued by the test."""

    def __init__(self) -> None:
        self.indices = FakeIndices()
        self.bulks: list[list[dict[str, Any]]] = []
        self.deletes: list[dict[str, Any]] = []
        self.msearches: list[list[dict[str, Any]]] = []
        self.msearch_responses: list[dict[str, Any]] = []
        self.deleted_count = 0

    def bulk(self, body: list[dict[str, Any]], params: dict[str, str] | None = None) -> dict[str, Any]:
        self.bulks.append(body)
        return {"errors": False, "items": [{"index": {"status": 201}} for _ in body[::2]]}

    def delete_by_query(self, index: str, body: dict[str, Any], params: dict[str, str] | None = None) -> dict[str, Any]:
        self.deletes.append({"index": index, "body": body, "params": params})
        return {"deleted": self.deleted_count}

    def msearch(self, body: list[dict[str, Any]]) -> dict[str, Any]:
        self.msearches.append(body)
        if self.msearch_responses:
            return self.msearch_responses.pop(0)
        # Unqueued (e.g. the version read after a write): an empty result per search.
        return {"responses": [{"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []}} for _ in body[::2]]}


def explanation(
    terms: dict[str, tuple[float, int]], doc_count: int, boost: float = 2.2, k1: float = 1.2
) -> dict[str, Any]:
    """A Lucene BM25 explanation like OpenSearch returns: terms -> (tf component, n)."""
    weights: list[dict[str, Any]] = []
    for term, (tf, doc_freq) in terms.items():
        idf = bm25_idf(doc_freq, doc_count)
        weights.append(
            {
                "value": boost * idf * tf,
                "description": f"weight(tokens:{term} in 7) [PerFieldSimilarity], result of:",
                "details": [
                    {
                        "value": boost * idf * tf,
                        "description": "score(freq=1.0), computed as boost * idf * tf from:",
                        "details": [
                            {"value": boost, "description": "boost", "details": []},
                            {
                                "value": idf,
                                "description": "idf, computed as log(1 + (N - n + 0.5) / (n + 0.5)) from:",
                                "details": [
                                    {"value": doc_freq, "description": "n, number of documents containing term"},
                                    {"value": doc_count, "description": "N, total number of documents with field"},
                                ],
                            },
                            {
                                "value": tf,
                                "description": "tf, computed as freq / (freq + k1 * (1 - b + b * dl / avgdl)) from:",
                                "details": [
                                    {"value": 1.0, "description": "freq, occurrences of term within document"},
                                    {"value": k1, "description": "k1, term saturation parameter"},
                                    {"value": 0.75, "description": "b, length normalization parameter"},
                                ],
                            },
                        ],
                    }
                ],
            }
        )
    total = sum(w["value"] for w in weights)
    return {
        "value": total,
        "description": "sum of:",
        "details": [
            {"value": total, "description": "sum of:", "details": weights},
            {"value": 0.0, "description": "match on required clause, product of:", "details": []},
        ],
    }


def hit(hit_id: str, tenant: str, document_id: str, score: float, **extra: Any) -> dict[str, Any]:
    source = {"tenant_id": tenant, "document_id": document_id, "title": f"T {document_id}", "text": "body", "url": None}
    source.update(extra.pop("source", {}))
    return {"_id": hit_id, "_score": score, "_source": source, **extra}


@pytest.fixture
def client() -> FakeOpenSearchClient:
    return FakeOpenSearchClient()


@pytest.fixture
def index(client: FakeOpenSearchClient) -> OpenSearchIndex:
    return OpenSearchIndex(client, INDEX, FakeEmbedder())


def _tenant_filters(node: Any) -> list[Any]:
    """Every {"term": {"tenant_id": ...}} anywhere in a request body."""
    found = []
    if isinstance(node, dict):
        if "term" in node and isinstance(node["term"], dict) and "tenant_id" in node["term"]:
            found.append(node["term"]["tenant_id"])
        for value in node.values():
            found.extend(_tenant_filters(value))
    elif isinstance(node, list):
        for value in node:
            found.extend(_tenant_filters(value))
    return found


def test_mapping_has_knn_vector_and_keyword_tenant_fields() -> None:
    body = index_body(512)
    assert body["settings"]["index"]["knn"] is True
    properties = body["mappings"]["properties"]
    assert properties["embedding"]["type"] == "knn_vector"
    assert properties["embedding"]["dimension"] == 512
    method = properties["embedding"]["method"]
    assert (method["name"], method["engine"], method["space_type"]) == ("hnsw", "faiss", "innerproduct")
    assert properties["tenant_id"] == {"type": "keyword"}
    assert properties["document_id"] == {"type": "keyword"}
    assert properties["tokens"] == {"type": "text", "analyzer": "whitespace"}


def test_index_creates_the_index_once_bulk_indexes_and_deletes_older_generations(
    index: OpenSearchIndex, client: FakeOpenSearchClient
) -> None:
    result = index.index("acme", DOCS)
    assert (result.documents, result.chunks) == (3, 3)
    assert [name for name, _ in client.indices.created] == [INDEX]
    assert client.indices.created[0][1]["mappings"]["properties"]["embedding"]["dimension"] == 512

    (actions,) = client.bulks
    assert len(actions) == 6
    assert all(action == {"index": {"_index": INDEX}} for action in actions[::2])  # no custom _id (AOSS)
    documents = actions[1::2]
    assert {d["document_id"] for d in documents} == {"returns", "shipping", "invoice"}
    assert all(d["tenant_id"] == "acme" for d in documents)
    generation = documents[0]["generation"]
    assert all(d["generation"] == generation for d in documents)
    returns = next(d for d in documents if d["document_id"] == "returns")
    assert returns["tokens"].split() == tokenize("Return policy\n" + DOCS[0].text)
    assert returns["url"] == "https://s.example/r"
    assert len(returns["embedding"]) == 512
    assert math.isclose(float(np.linalg.norm(returns["embedding"])), 1.0, rel_tol=1e-5)

    (delete,) = client.deletes
    query = delete["body"]["query"]["bool"]
    assert {"term": {"tenant_id": "acme"}} in query["filter"]
    assert {"terms": {"document_id": ["returns", "shipping", "invoice"]}} in query["filter"]
    assert query["must_not"] == [{"term": {"generation": generation}}]

    index.index("acme", DOCS[:1])
    assert len(client.indices.created) == 1  # created once


def test_an_existing_index_is_not_recreated(index: OpenSearchIndex, client: FakeOpenSearchClient) -> None:
    client.indices.existing.add(INDEX)
    index.index("acme", DOCS)
    assert client.indices.created == []


def test_refresh_is_requested_only_when_configured(client: FakeOpenSearchClient) -> None:
    OpenSearchIndex(client, INDEX, FakeEmbedder()).index("acme", DOCS[:1])
    OpenSearchIndex(client, INDEX, FakeEmbedder(), refresh=True).index("acme", DOCS[:1])
    assert client.deletes[0]["params"] == {}
    assert client.deletes[1]["params"] == {"refresh": "true"}


def test_bulk_errors_are_reported(index: OpenSearchIndex, client: FakeOpenSearchClient) -> None:
    def failing_bulk(body: list[dict[str, Any]], params: dict[str, str] | None = None) -> dict[str, Any]:
        return {"errors": True, "items": [{"index": {"status": 400, "error": {"type": "mapper_parsing_exception"}}}]}

    client.bulk = failing_bulk  # type: ignore[method-assign]
    with pytest.raises(UpstreamError, match="mapper_parsing_exception"):
        index.index("acme", DOCS)
    # the old chunks stay; what got in of the new generation is removed
    (delete,) = client.deletes
    query = delete["body"]["query"]["bool"]
    assert "must_not" not in query
    assert {"term": {"tenant_id": "acme"}} in query["filter"]
    assert any("generation" in clause.get("term", {}) for clause in query["filter"])


def test_delete_document_is_scoped_to_the_tenant(index: OpenSearchIndex, client: FakeOpenSearchClient) -> None:
    client.deleted_count = 2
    assert index.delete_document("acme", "returns") is True
    client.deleted_count = 0
    assert index.delete_document("acme", "returns") is False
    body = client.deletes[0]["body"]
    assert body == {
        "query": {"bool": {"filter": [{"term": {"tenant_id": "acme"}}, {"terms": {"document_id": ["returns"]}}]}}
    }


def test_documents_are_listed_from_a_tenant_filtered_aggregation(
    index: OpenSearchIndex, client: FakeOpenSearchClient
) -> None:
    def bucket(document_id: str, chunks: int, tenant: str) -> dict[str, Any]:
        source = {"title": document_id.title(), "url": None, "tenant_id": tenant}
        return {
            "key": document_id,
            "doc_count": chunks + 1,
            "chunks": {"value": chunks},
            "first": {"hits": {"hits": [{"_source": source}]}},
        }

    aggregations = {"documents": {"buckets": [bucket("faq", 3, "acme"), bucket("returns", 1, "other")]}}
    client.msearch_responses.append({"responses": [{"aggregations": aggregations}]})
    listed = index.documents("acme")
    assert [(d.document_id, d.title, d.chunks) for d in listed] == [("faq", "Faq", 3), ("returns", "returns", 1)]
    (body,) = client.msearches
    assert body[1]["query"] == {"bool": {"filter": [{"term": {"tenant_id": "acme"}}]}} and body[1]["size"] == 0
    missing = {"error": {"type": "index_not_found_exception"}}
    client.msearch_responses.append({"responses": [missing]})
    assert index.documents("acme") == []


def test_search_sends_keyword_and_knn_queries_both_filtered_by_tenant(
    index: OpenSearchIndex, client: FakeOpenSearchClient
) -> None:
    client.msearch_responses.append({"responses": [{"hits": {"hits": []}}, {"hits": {"hits": []}}, EMPTY]})
    assert index.search("acme", "How do I get a refund?", 4) == []
    (body,) = client.msearches
    assert body[0] == body[2] == body[4] == {"index": INDEX}
    keyword, knn, version = body[1], body[3], body[5]
    assert version["size"] == 0 and set(version["aggs"]) == {"stamp", "latest"}
    assert keyword["explain"] is True
    assert keyword["query"]["bool"]["filter"] == [{"term": {"tenant_id": "acme"}}]
    assert keyword["query"]["bool"]["must"] == [{"match": {"tokens": {"query": "refund", "operator": "or"}}}]
    knn_clause = knn["query"]["knn"]["embedding"]
    assert knn_clause["filter"] == {"term": {"tenant_id": "acme"}}
    assert len(knn_clause["vector"]) == 512 and knn_clause["k"] == knn["size"] >= 8
    assert knn["_source"] == {"excludes": ["embedding", "tokens"]}
    assert _tenant_filters(body) == ["acme", "acme", "acme"]


def test_a_query_without_keyword_terms_still_searches_vectors_with_the_tenant_filter(
    index: OpenSearchIndex, client: FakeOpenSearchClient
) -> None:
    client.msearch_responses.append({"responses": [{"hits": {"hits": []}}, EMPTY]})
    index.search("acme", "how can I?", 4)  # only stopwords
    (body,) = client.msearches
    assert len(body) == 4 and "knn" in body[1]["query"]
    assert _tenant_filters(body) == ["acme", "acme"]


def test_search_fuses_both_result_lists_and_drops_other_tenants_hits(
    index: OpenSearchIndex, client: FakeOpenSearchClient
) -> None:
    query_vector = np.asarray(FakeEmbedder().embed(["refund policy"])[0], dtype=np.float32)
    doc_count = 10
    # "a": strong keyword match (both terms, high tf) and returned by k-NN with cosine 0.9
    # "b": keyword-only hit; its stored vector is the query vector (cosine 1.0)
    # "c": k-NN only, cosine 0.3; "x": another tenant's hit that must never surface
    keyword_hits = [
        hit("a", "acme", "returns", 0.0, _explanation=explanation({"refund": (0.7, 2), "policy": (0.6, 3)}, doc_count)),
        hit("b", "acme", "refunds", 0.0, _explanation=explanation({"refund": (0.4, 2)}, doc_count),
            source={"embedding": query_vector.tolist()}),
        hit("x", "globex", "secret", 9.9, _explanation=explanation({"refund": (0.9, 2)}, doc_count)),
    ]
    for h in keyword_hits:
        h["_score"] = h["_explanation"]["value"]
    vector_hits = [hit("a", "acme", "returns", 1.9), hit("c", "acme", "shipping", 1.3), hit("y", "globex", "s", 2.0)]
    client.msearch_responses.append(
        {"responses": [{"hits": {"hits": keyword_hits}}, {"hits": {"hits": vector_hits}}, EMPTY]}
    )

    passages = index.search("acme", "refund policy", 10)
    assert [p.document_id for p in passages] == ["returns", "refunds", "shipping"]
    assert all(0.0 <= p.score <= 1.0 for p in passages)
    # "a": keyword ratio above 1 (capped) and cosine 0.9 -> 0.5 * 1 + 0.5 * 1
    assert passages[0].score == pytest.approx(1.0, abs=1e-3)
    # "c": no keyword evidence, cosine 0.3 -> 0.5 * (0.3 - 0.2) / 0.6
    assert passages[2].score == pytest.approx(0.5 * 0.1 / 0.6, abs=1e-3)
    assert "secret" not in [p.document_id for p in passages]


def test_parse_explanation_reads_idf_boost_k1_and_doc_count() -> None:
    parsed = parse_explanation(explanation({"退款": (0.5, 2), "refund": (0.4, 5)}, 20))
    assert set(parsed.terms) == {"退款", "refund"}
    assert parsed.terms["退款"].idf == pytest.approx(bm25_idf(2, 20))
    assert parsed.terms["refund"].boost == 2.2 and parsed.terms["refund"].k1 == 1.2
    assert parsed.doc_count == 20
    assert parse_explanation(None).terms == {}
    assert parse_explanation({"value": 1.0, "description": "something else"}).terms == {}


def test_keyword_ratio_counts_unmatched_terms_in_the_bound() -> None:
    doc_count = 10
    matched_both = explanation({"refund": (1 / 2.2, 2), "policy": (1 / 2.2, 3)}, doc_count)
    matched_one = explanation({"refund": (1 / 2.2, 2)}, doc_count)
    hits = [
        {"_id": "both", "_score": matched_both["value"], "_explanation": matched_both},
        {"_id": "one", "_score": matched_one["value"], "_explanation": matched_one},
    ]
    ratios = keyword_ratios_from_hits(["refund", "policy"], hits)
    # one occurrence of every term at average length is exactly the bound
    assert ratios["both"] == pytest.approx(1.0)
    assert ratios["one"] == pytest.approx(bm25_idf(2, 10) / (bm25_idf(2, 10) + bm25_idf(3, 10)))
    # a query term no hit matched counts with the idf of an unknown term
    with_unknown = keyword_ratios_from_hits(["refund", "policy", "zebra"], hits)
    expected = (bm25_idf(2, 10) + bm25_idf(3, 10)) / (bm25_idf(2, 10) + bm25_idf(3, 10) + bm25_idf(0, 10))
    assert with_unknown["both"] == pytest.approx(expected)


def test_keyword_ratio_without_explanation_falls_back_to_term_coverage() -> None:
    hits: list[dict[str, Any]] = [{"_id": "h", "_score": 3.0, "_source": {"tokens": "refund within 30 day"}}]
    assert keyword_ratios_from_hits(["refund", "policy"], hits) == {"h": 0.5}


def test_inner_product_score_inversion() -> None:
    for inner_product in (-0.8, -0.1, 0.0, 0.35, 0.99):
        score = 1 + inner_product if inner_product >= 0 else 1 / (1 - inner_product)
        assert inner_product_from_score(score) == pytest.approx(inner_product)


def test_invalid_tenant_ids_never_reach_the_cluster(index: OpenSearchIndex, client: FakeOpenSearchClient) -> None:
    for call in (
        lambda: index.search("../x", "q", 3),
        lambda: index.index("a b", DOCS),
        lambda: index.delete_document("*", "d"),
    ):
        with pytest.raises(BadRequest):
            call()
    assert client.msearches == [] and client.bulks == [] and client.deletes == []


def test_missing_index_searches_as_empty(index: OpenSearchIndex, client: FakeOpenSearchClient) -> None:
    error = {"error": {"type": "index_not_found_exception", "reason": "no such index"}, "status": 404}
    client.msearch_responses.append({"responses": [error, error, error]})
    assert index.search("acme", "refund", 3) == []
    client.msearch_responses.append({"responses": [{"error": {"type": "search_phase_execution_exception"}}] * 3})
    with pytest.raises(UpstreamError):
        index.search("acme", "refund", 3)


# --- the real opensearch-py client over a fake connection: what goes on the wire ---


class FakeConnection:
    """Stands in for opensearch-py's HTTP connection: records requests, answers like a cluster."""

    requests: list[tuple[str, str, Any]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.host = "http://fake:9200"

    def perform_request(
        self, method: str, url: str, params: Any = None, body: Any = None, timeout: Any = None, ignore: Any = (),
        headers: Any = None,
    ) -> tuple[int, dict[str, str], str]:
        FakeConnection.requests.append((method, url, body))
        if method == "HEAD":
            return 404, {}, ""
        if url.endswith("/_bulk"):
            return 200, {}, json.dumps({"errors": False, "items": []})
        if url.endswith("/_delete_by_query"):
            return 200, {}, json.dumps({"deleted": 1})
        if url.endswith("/_msearch"):
            searches = len(_text(body).splitlines()) // 2
            return 200, {}, json.dumps({"responses": [{"hits": {"hits": []}}] * searches})
        return 200, {}, json.dumps({"acknowledged": True})

    def close(self) -> None:
        pass


def _text(body: Any) -> str:
    return body.decode() if isinstance(body, bytes) else str(body)


def test_the_real_client_sends_ndjson_bulk_and_msearch() -> None:
    from opensearchpy import OpenSearch

    FakeConnection.requests = []
    client = OpenSearch(hosts=[{"host": "fake", "port": 9200}], connection_class=FakeConnection)
    index = OpenSearchIndex(client, INDEX, FakeEmbedder())
    index.index("acme", DOCS[:2])
    index.search("acme", "refund", 3)
    methods_urls = [(m, u) for m, u, _ in FakeConnection.requests]
    assert methods_urls == [
        ("HEAD", f"/{INDEX}"),
        ("PUT", f"/{INDEX}"),
        ("POST", "/_bulk"),
        ("POST", f"/{INDEX}/_delete_by_query"),
        ("POST", "/_msearch"),  # the version after the write
        ("POST", "/_msearch"),  # the search
    ]
    bulk_lines = _text(FakeConnection.requests[2][2]).splitlines()
    assert len(bulk_lines) == 4 and json.loads(bulk_lines[1])["tenant_id"] == "acme"
    msearch_lines = _text(FakeConnection.requests[5][2]).splitlines()
    assert len(msearch_lines) == 6
    assert all(json.loads(line) == {"index": INDEX} for line in msearch_lines[::2])


# --- client construction ---


def test_https_aws_endpoint_is_sigv4_signed_for_the_configured_service(monkeypatch: pytest.MonkeyPatch) -> None:
    import requests
    from opensearchpy import RequestsAWSV4SignerAuth

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    settings = Settings(
        knowledge_backend="opensearch",
        opensearch_endpoint="https://abc123.eu-west-1.aoss.amazonaws.com",
        opensearch_service="aoss",
        aws_region="eu-west-1",
    )
    client = build_client(settings)
    connection = client.transport.connection_pool.connections[0]
    auth = connection.session.auth
    assert isinstance(auth, RequestsAWSV4SignerAuth)
    assert connection.host == "https://abc123.eu-west-1.aoss.amazonaws.com:443"
    # signing happens locally: check the credential scope of a signed request
    request = requests.Request("POST", connection.host + "/_msearch", data=b"{}").prepare()
    signed = auth(request)
    assert "AKIDEXAMPLE/" in signed.headers["Authorization"]
    assert "/eu-west-1/aoss/aws4_request" in signed.headers["Authorization"]


def test_local_http_endpoint_is_plain() -> None:
    client = build_client(Settings(knowledge_backend="opensearch", opensearch_endpoint="http://localhost:9200"))
    connection = client.transport.connection_pool.connections[0]
    assert connection.session.auth is None
    assert connection.host == "http://localhost:9200"


@pytest.mark.parametrize("endpoint", [None, "", "localhost:9200", "ftp://x"])
def test_a_missing_or_malformed_endpoint_is_a_clear_error(endpoint: str | None) -> None:
    with pytest.raises(ValueError, match="OPENSEARCH_ENDPOINT"):
        build_client(Settings(knowledge_backend="opensearch", opensearch_endpoint=endpoint))
