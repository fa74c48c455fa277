"""On-prem embedding and rerank servers over real HTTP: a local server speaking OpenAI's
/v1/embeddings (TEI, vLLM, Ollama), TEI's /rerank and the Cohere-style /v1/rerank."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.errors import UpstreamError
from shared.knowledge.base import Document
from shared.knowledge.local_index import LocalHybridIndex
from shared.knowledge.remote_embedders import OpenAICompatibleEmbedder
from shared.knowledge.rerank import HttpReranker
from shared.knowledge.search import KnowledgeService
from shared.tenant_config.retrieval import RetrievalConfig

pytestmark = pytest.mark.integration
DIMENSION = 64


def vector_for(text: str) -> list[float]:
    """Bag of hashed words: texts sharing words are similar (deterministic, like a tiny model)."""
    vector = np.zeros(DIMENSION)
    for word in text.lower().split():
        vector[int(hashlib.sha1(word.strip("?.,").encode()).hexdigest(), 16) % DIMENSION] += 1.0
    return (vector * 3.0).tolist()  # deliberately not unit length: the client normalises


class ModelServer(ThreadingHTTPServer):
    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        self.fail_next: list[int] = []  # statuses to answer before answering properly
        self.wrong_dimension = False
        # When set, an embedding request waits here for another one: answered only if two are in flight.
        self.rendezvous: threading.Barrier | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: ModelServer

    def log_message(self, *args: Any) -> None:
        pass

    def _send(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        if self.server.fail_next:
            self._send(self.server.fail_next.pop(0), {"error": "model is loading"})
            return
        if self.path == "/v1/embeddings":
            if self.server.rendezvous is not None:
                try:
                    self.server.rendezvous.wait()  # the barrier's own timeout
                except threading.BrokenBarrierError:
                    self._send(400, {"error": "no other request arrived while this one was in flight"})
                    return
            if not isinstance(body.get("input"), list) or not body.get("model"):
                self._send(422, {"error": "input and model are required"})
                return
            data = [
                {
                    "object": "embedding",
                    "index": n,
                    "embedding": vector_for(text)[: DIMENSION - self.server.wrong_dimension],
                }
                for n, text in enumerate(body["input"])
            ]
            data.reverse()  # servers may answer in any order: the index field counts
            self._send(200, {"object": "list", "data": data, "model": body["model"], "usage": {"prompt_tokens": 1}})
        elif self.path in ("/rerank", "/v1/rerank"):
            texts = body["texts"] if self.path == "/rerank" else body["documents"]
            query_words = set(body["query"].lower().split())
            scores = [len(query_words & set(t.lower().split())) / max(len(query_words), 1) for t in texts]
            order = sorted(range(len(texts)), key=lambda n: -scores[n])  # both servers sort by relevance
            if self.path == "/rerank":
                self._send(200, [{"index": n, "score": scores[n]} for n in order])
            else:
                self._send(200, {"id": "r1", "results": [{"index": n, "relevance_score": scores[n]} for n in order]})
        else:
            self._send(404, {"error": "not found"})


@pytest.fixture
def server() -> Iterator[ModelServer]:
    server = ModelServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def embedder(server: ModelServer, **options: Any) -> OpenAICompatibleEmbedder:
    return OpenAICompatibleEmbedder(f"{server.url}/v1", "bge-m3", DIMENSION, **options)


def test_openai_embeddings_request_batches_order_and_unit_vectors(server: ModelServer) -> None:
    texts = [f"text number {n}" for n in range(5)]
    matrix = embedder(server, api_key="sk-local", batch_size=2).embed_matrix(texts)
    assert matrix.shape == (5, DIMENSION)
    assert np.allclose(np.linalg.norm(matrix, axis=1), 1.0)
    expected = np.asarray([vector_for(t) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(matrix, expected, atol=1e-6)  # rows back in input order despite the shuffled reply
    bodies = [body for path, _, body in server.requests]
    # (batches are sent concurrently: they may arrive in any order)
    assert sorted(b["input"] for b in bodies) == [texts[0:2], texts[2:4], texts[4:5]]
    assert all(b["model"] == "bge-m3" and b["encoding_format"] == "float" for b in bodies)
    assert all(headers["Authorization"] == "Bearer sk-local" for _, headers, _ in server.requests)


def test_batches_of_a_large_upload_are_in_flight_together(server: ModelServer) -> None:
    # Given a server that answers a request only while another one is in flight
    server.rendezvous = threading.Barrier(2, timeout=10)
    texts = [f"passage {n} about parcels" for n in range(8)]
    # When four batches are embedded with two in flight at a time / Then every batch is answered, in order
    matrix = embedder(server, batch_size=2, concurrency=2).embed_matrix(texts)
    expected = np.asarray([vector_for(t) for t in texts])
    assert np.allclose(matrix, expected / np.linalg.norm(expected, axis=1, keepdims=True), atol=1e-6)
    assert len(server.requests) == 4


def test_one_at_a_time_when_asked(server: ModelServer) -> None:
    server.rendezvous = threading.Barrier(2, timeout=0.2)
    with pytest.raises(UpstreamError, match="no other request"):
        embedder(server, batch_size=2, concurrency=1).embed_matrix(["a b", "c d", "e f"])


def test_a_loading_server_is_retried_and_errors_are_clear(server: ModelServer) -> None:
    server.fail_next = [503]
    assert embedder(server).embed_query("hello").shape == (DIMENSION,)
    assert len(server.requests) == 2
    server.fail_next = [400]
    with pytest.raises(UpstreamError, match="400"):
        embedder(server).embed_query("hello")
    server.wrong_dimension = True
    with pytest.raises(UpstreamError, match="KEFU_EMBEDDING_DIMENSION"):
        embedder(server).embed_query("hello")
    with pytest.raises(UpstreamError, match="unreachable"):
        OpenAICompatibleEmbedder("http://127.0.0.1:9/v1", "m", DIMENSION, retries=0).embed_query("x")


def test_the_index_works_end_to_end_with_an_http_embedder(server: ModelServer, tmp_path: Path) -> None:
    index = LocalHybridIndex(tmp_path, embedder(server))
    index.index(
        "acme",
        [
            Document(id="returns", title="Returns", text="Return unused items within 30 days for a refund."),
            Document(id="shipping", title="Shipping", text="Parcels arrive in two to four working days."),
        ],
    )
    assert index.search("acme", "when do parcels arrive", 1)[0].document_id == "shipping"
    assert server.requests[-1][2]["input"] == ["when do parcels arrive"]  # the query, embedded once


@pytest.mark.parametrize(("wire", "path"), [("tei", "/rerank"), ("cohere", "/v1/rerank")])
def test_rerank_servers_scores_in_input_order(server: ModelServer, wire: str, path: str) -> None:
    reranker = HttpReranker(server.url, wire=wire, model="bge-reranker-v2-m3")
    scores = reranker.rerank("refund days", ["shipping takes days", "refund within days", "opening hours"])
    assert scores == [0.5, 1.0, 0.0]
    (sent_path, _, body) = server.requests[-1]
    assert sent_path == path
    if wire == "tei":
        assert body == {
            "query": "refund days",
            "texts": ["shipping takes days", "refund within days", "opening hours"],
            "truncate": True,
            "raw_scores": False,
            "return_text": False,
        }
    else:
        assert body["documents"][1] == "refund within days" and body["top_n"] == 3
        assert body["model"] == "bge-reranker-v2-m3"


def test_a_tenant_with_reranking_uses_the_tei_server_through_the_service(server: ModelServer, tmp_path: Path) -> None:
    index = LocalHybridIndex(tmp_path, embedder(server))
    index.index(
        "acme",
        [
            Document(id="a", title="Opening hours", text="We open at nine."),
            Document(id="b", title="Refunds", text="Refunds are paid within five days."),
        ],
    )
    knowledge = KnowledgeService(index, 0.3, 4, reranker=HttpReranker(server.url, wire="tei"), rerank_candidates=5)
    outcome = knowledge.search("acme", RetrievalConfig(rerank=True), "when are refunds paid", 2)
    assert outcome.reranked and outcome.passages[0].document_id == "b"
    assert any(path == "/rerank" for path, _, _ in server.requests)
    # The reranker is down (nothing listens there): the fused ranking answers.
    knowledge.reranker = HttpReranker("http://127.0.0.1:9", wire="tei", retries=0)
    fallback = knowledge.search("acme", RetrievalConfig(rerank=True), "when are refunds paid", 2)
    assert not fallback.reranked and fallback.passages
