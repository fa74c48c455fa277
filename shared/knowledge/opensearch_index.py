"""The knowledge index on OpenSearch (Amazon OpenSearch Serverless or a managed/local domain).

One index holds every tenant's rows (a chunk is one row per lead, see indexing.py); every query carries
a ``tenant_id`` term filter. Keyword matching uses the same tokenizer as the local index: its tokens
are indexed in a ``tokens`` field with the built-in whitespace analyzer. Chinese is segmented by jieba
in the client because the Chinese analysis plugins (analysis-smartcn, analysis-ik) cannot be installed
on OpenSearch Serverless (no custom plugins); doing it client-side also gives identical terms locally
and in the cloud. The display fields (title, section, text) use the built-in ``cjk`` analyzer (CJK
bigrams, English lowercase + stopwords), which every OpenSearch has, for ad-hoc queries in Dashboards.

A search is one ``_msearch`` round trip with two requests, both filtered by tenant:
- BM25 over ``tokens`` with ``explain``: the explanation gives each matched term's idf, from which the
  query's BM25 bound (scoring.term_bound) is computed, so keyword evidence is absolute as in the local
  index. These hits also return their vector, so their cosine is computed client-side.
- k-NN over ``embedding`` (faiss HNSW, inner product on unit vectors == cosine), with the tenant filter
  inside the k-NN clause (efficient filtering: k results of this tenant, not k global results).
- the tenant's knowledge version: hit count, sum of per-write random stamps and the latest write time
  (aggregations), read in the same round trip so the version matches what was searched.
The union of candidates is fused client-side by scoring.fuse, the same function the local index uses.
A k-NN-only candidate gets keyword evidence 0 (it was not among the BM25 candidates). Client-side
fusion rather than a search pipeline with the normalization processor: that processor normalises per
query (min-max or L2), so the best hit of every query scores high, and a fixed "no good answer"
threshold would mean nothing; pipelines are also not available on every OpenSearch Serverless
collection. Absolute evidence fused in the client keeps scores comparable across queries and equal to
the local index's.

Re-indexing writes the new chunks with a fresh ``generation`` and then deletes the document's chunks
of other generations with ``_delete_by_query``: no moment without the document. No custom ``_id`` is
used (OpenSearch Serverless vector collections do not accept them).
"""

from __future__ import annotations

import hashlib
import random
import re
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import numpy as np

from shared.errors import UpstreamError
from shared.knowledge.base import (
    EMPTY_VERSION,
    Document,
    DocumentSummary,
    Embedder,
    IndexResult,
    KnowledgeIndex,
    Passage,
    SearchHits,
)
from shared.knowledge.chunking import DEFAULT_MAX_CHARS, DEFAULT_OVERLAP_CHARS, chunk_document
from shared.knowledge.ids import validate_tenant_id
from shared.knowledge.indexing import chunk_rows, embed_rows, row_tokens
from shared.knowledge.scoring import BM25_K1, DEFAULT_KEYWORD_WEIGHT, bm25_idf, fuse, rank_groups, term_bound
from shared.knowledge.text import alternative_terms, fold_chinese, tokenize

if TYPE_CHECKING:
    from shared.settings import Settings

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "host.docker.internal"}
_WEIGHT_DESCRIPTION = re.compile(r"^weight\((?P<field>[^:]+):(?P<term>.+?) in \d+\)")
TOKENS_FIELD = "tokens"
VECTOR_FIELD = "embedding"
# HNSW graph parameters (faiss): m links per node, ef_construction candidates while building.
HNSW_M = 16
HNSW_EF_CONSTRUCTION = 128
# Rows per _bulk request: ~5 KB each with a 512-d vector, so ~2.5 MB, well under request limits.
BULK_ROWS = 500
_STAMP_RANGE = (1, 2**31 - 1)


def vector_mapping(dimension: int) -> dict[str, Any]:
    return {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "engine": "faiss",  # the engine OpenSearch Serverless supports for filtered k-NN
            "space_type": "innerproduct",  # unit vectors: inner product == cosine
            "parameters": {"m": HNSW_M, "ef_construction": HNSW_EF_CONSTRUCTION},
        },
    }


def index_body(dimension: int) -> dict[str, Any]:
    """Settings and mapping of the shared knowledge index (infra/constructs/knowledge.py grants the
    admin function the right to create it with exactly this body on first write)."""
    display = {"type": "text", "analyzer": "cjk"}
    return {
        "settings": {"index": {"knn": True}},
        "mappings": {
            "dynamic": False,
            "properties": {
                "tenant_id": {"type": "keyword"},
                "document_id": {"type": "keyword"},
                "generation": {"type": "keyword"},
                "chunk": {"type": "integer"},
                "kind": {"type": "keyword"},
                # Knowledge version inputs (see module docstring).
                "stamp": {"type": "long"},
                "indexed_at": {"type": "long"},
                "title": display,
                "section": display,
                "text": display,
                "lead": {"type": "keyword", "index": False},
                "url": {"type": "keyword", "index": False},
                # Pre-tokenised by shared.knowledge.text.tokenize (jieba for Chinese).
                TOKENS_FIELD: {"type": "text", "analyzer": "whitespace"},
                VECTOR_FIELD: vector_mapping(dimension),
            },
        },
    }


def tenant_filter(tenant_id: str) -> dict[str, Any]:
    return {"term": {"tenant_id": tenant_id}}


def keyword_search_body(tenant_id: str, terms: list[str], size: int) -> dict[str, Any]:
    return {
        "size": size,
        "explain": True,  # per-term idf for the keyword bound (see module docstring)
        "query": {
            "bool": {
                "must": [{"match": {TOKENS_FIELD: {"query": " ".join(terms), "operator": "or"}}}],
                "filter": [tenant_filter(tenant_id)],
            }
        },
    }


def vector_search_body(tenant_id: str, vector: list[float], size: int) -> dict[str, Any]:
    return {
        "size": size,
        "_source": {"excludes": [VECTOR_FIELD, TOKENS_FIELD]},
        "query": {"knn": {VECTOR_FIELD: {"vector": vector, "k": size, "filter": tenant_filter(tenant_id)}}},
    }


def version_body(tenant_id: str) -> dict[str, Any]:
    """Size-0 search whose hit count and aggregations fingerprint the tenant's rows."""
    return {
        "size": 0,
        "track_total_hits": True,
        "query": {"bool": {"filter": [tenant_filter(tenant_id)]}},
        "aggs": {"stamp": {"sum": {"field": "stamp"}}, "latest": {"max": {"field": "indexed_at"}}},
    }


def version_from_response(response: Mapping[str, Any]) -> str:
    total = response.get("hits", {}).get("total", 0)
    count = int(total.get("value", 0) if isinstance(total, Mapping) else total or 0)
    if count == 0:
        return EMPTY_VERSION
    aggregations = response.get("aggregations", {})
    stamp = aggregations.get("stamp", {}).get("value") or 0
    latest = aggregations.get("latest", {}).get("value") or 0
    digest = hashlib.sha256(f"{count}:{int(stamp)}:{int(latest)}".encode()).hexdigest()
    return "os-" + digest[:20]


def delete_body(
    tenant_id: str,
    document_ids: list[str],
    keep_generation: str | None = None,
    only_generation: str | None = None,
) -> dict[str, Any]:
    """Delete-by-query body for a tenant's documents, optionally sparing or targeting one generation."""
    query: dict[str, Any] = {"filter": [tenant_filter(tenant_id), {"terms": {"document_id": document_ids}}]}
    if keep_generation is not None:
        query["must_not"] = [{"term": {"generation": keep_generation}}]
    if only_generation is not None:
        query["filter"].append({"term": {"generation": only_generation}})
    return {"query": {"bool": query}}


# A tenant's listing reads at most this many documents (a terms aggregation's bucket count).
MAX_LISTED_DOCUMENTS = 10_000


def documents_body(tenant_id: str) -> dict[str, Any]:
    """One bucket per document of the tenant: its chunk count and one chunk's title and URL."""
    return {
        "size": 0,
        "query": {"bool": {"filter": [tenant_filter(tenant_id)]}},
        "aggs": {
            "documents": {
                "terms": {"field": "document_id", "size": MAX_LISTED_DOCUMENTS, "order": {"_key": "asc"}},
                "aggs": {
                    "chunks": {"cardinality": {"field": "chunk"}},
                    "first": {"top_hits": {"size": 1, "_source": ["title", "url", "tenant_id"]}},
                },
            }
        },
    }


def documents_from_response(response: Mapping[str, Any], tenant_id: str) -> list[DocumentSummary]:
    listed = []
    for bucket in response.get("aggregations", {}).get("documents", {}).get("buckets", []):
        hits = _own_hits(bucket.get("first", {}), tenant_id)
        source = hits[0]["_source"] if hits else {}
        listed.append(
            DocumentSummary(
                document_id=str(bucket["key"]),
                title=str(source.get("title") or bucket["key"]),
                url=source.get("url"),
                chunks=int(bucket.get("chunks", {}).get("value", bucket.get("doc_count", 0))),
            )
        )
    return listed


def inner_product_from_score(score: float) -> float:
    """Invert the faiss inner-product score mapping (ip >= 0: 1 + ip; else 1 / (1 - ip))."""
    return score - 1.0 if score >= 1.0 else 1.0 - 1.0 / max(score, 1e-9)


@dataclass
class _TermStats:
    idf: float
    boost: float
    k1: float


@dataclass
class _Explained:
    """What a hit's BM25 explanation tells: per matched term its idf/boost/k1, and N."""

    terms: dict[str, _TermStats] = field(default_factory=dict)
    doc_count: int | None = None


def _walk(node: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    yield node
    for child in node.get("details", []) or []:
        yield from _walk(child)


def parse_explanation(explanation: Mapping[str, Any] | None, field_name: str = TOKENS_FIELD) -> _Explained:
    """Pull per-term BM25 statistics out of a Lucene explanation tree (tolerant: unknown parts skipped)."""
    parsed = _Explained()
    if not explanation:
        return parsed
    for node in _walk(explanation):
        match = _WEIGHT_DESCRIPTION.match(str(node.get("description", "")))
        if not match or match.group("field") != field_name:
            continue
        idf = boost = None
        k1 = BM25_K1
        for part in _walk(node):
            description = str(part.get("description", ""))
            value = part.get("value")
            if not isinstance(value, int | float):
                continue
            if description.startswith("idf"):
                idf = float(value)
            elif description == "boost":
                boost = float(value)
            elif description.startswith("k1"):
                k1 = float(value)
            elif description.startswith("N,"):
                parsed.doc_count = int(value)
        if idf is not None:
            parsed.terms[match.group("term")] = _TermStats(idf=idf, boost=boost or 1.0, k1=k1)
    return parsed


def keyword_ratios_from_hits(
    terms: list[str], hits: Sequence[Mapping[str, Any]], alternatives: Sequence[str] = ()
) -> dict[str, float]:
    """Keyword ratio per hit id: _score / the query's BM25 bound (see scoring.keyword_ratio).

    Terms a hit did not match take their idf from another hit's explanation, else the idf of an
    unknown term. ``alternatives`` (text.alternative_terms) join the bound only when some hit matched
    them. A hit without a usable explanation falls back to the share of query terms it contains.
    """
    explained = {hit["_id"]: parse_explanation(hit.get("_explanation")) for hit in hits}
    known: dict[str, _TermStats] = {}
    for parsed in explained.values():
        known.update(parsed.terms)
    terms = list(terms) + [term for term in alternatives if term in known and term not in terms]
    ratios: dict[str, float] = {}
    for hit in hits:
        parsed = explained[hit["_id"]]
        if not parsed.terms:
            hit_tokens = set(str(hit.get("_source", {}).get(TOKENS_FIELD, "")).split())
            ratios[hit["_id"]] = sum(term in hit_tokens for term in terms) / max(len(terms), 1)
            continue
        sample = next(iter(parsed.terms.values()))
        bound = 0.0
        for term in terms:
            stats = parsed.terms.get(term) or known.get(term)
            if stats is None:
                unknown_idf = bm25_idf(0, parsed.doc_count or 1)
                bound += term_bound(unknown_idf, sample.k1, sample.boost)
            else:
                bound += term_bound(stats.idf, stats.k1, stats.boost)
        ratios[hit["_id"]] = max(0.0, float(hit.get("_score") or 0.0)) / bound if bound > 0 else 0.0
    return ratios


def build_client(settings: Settings) -> Any:
    """An opensearch-py client: SigV4-signed for an AWS https endpoint, plain for a local one."""
    from opensearchpy import OpenSearch, RequestsAWSV4SignerAuth, RequestsHttpConnection

    if not settings.opensearch_endpoint:
        raise ValueError("KEFU_OPENSEARCH_ENDPOINT is required when KEFU_KNOWLEDGE_BACKEND=opensearch")
    endpoint = urlparse(settings.opensearch_endpoint)
    if endpoint.scheme not in ("http", "https") or not endpoint.hostname:
        raise ValueError(f"KEFU_OPENSEARCH_ENDPOINT must be an http(s) URL, got {settings.opensearch_endpoint!r}")
    use_ssl = endpoint.scheme == "https"
    options: dict[str, Any] = {
        "hosts": [{"host": endpoint.hostname, "port": endpoint.port or (443 if use_ssl else 80)}],
        "use_ssl": use_ssl,
        "verify_certs": use_ssl,
        "connection_class": RequestsHttpConnection,
        "timeout": 10,
        "max_retries": 2,
        "retry_on_timeout": True,
    }
    if use_ssl and endpoint.hostname not in _LOCAL_HOSTS:
        import boto3

        credentials = boto3.Session().get_credentials()
        # RequestsAWSV4SignerAuth is AWSV4SignerAuth's current name (the old one is a deprecated alias).
        options["http_auth"] = RequestsAWSV4SignerAuth(credentials, settings.aws_region, settings.opensearch_service)
    return OpenSearch(**options)


class OpenSearchIndex(KnowledgeIndex):
    """KnowledgeIndex on one OpenSearch index shared by all tenants (tenant filter on every query)."""

    def __init__(
        self,
        client: Any,
        index_name: str,
        embedder: Embedder,
        keyword_weight: float = DEFAULT_KEYWORD_WEIGHT,
        candidates: int = 20,
        refresh: bool = False,
        max_chunk_chars: int = DEFAULT_MAX_CHARS,
        chunk_overlap_chars: int = DEFAULT_OVERLAP_CHARS,
    ) -> None:
        self.client = client
        self.index_name = index_name
        self.embedder = embedder
        self.keyword_weight = keyword_weight
        self.candidates = candidates
        # OpenSearch Serverless rejects refresh requests; a local/managed domain in tests wants them.
        self.refresh = refresh
        self.max_chunk_chars = max_chunk_chars
        self.chunk_overlap_chars = chunk_overlap_chars
        self._index_ready = False

    def ensure_index(self) -> None:
        if self._index_ready:
            return
        if not self.client.indices.exists(index=self.index_name):
            try:
                self.client.indices.create(index=self.index_name, body=index_body(self.embedder.dimension))
            except Exception as error:
                # Another writer may have created it between exists() and create().
                if "resource_already_exists_exception" not in str(error):
                    raise
        self._index_ready = True

    def _params(self) -> dict[str, str]:
        return {"refresh": "true"} if self.refresh else {}

    def index(self, tenant_id: str, documents: list[Document]) -> IndexResult:
        validate_tenant_id(tenant_id)
        latest = {document.id: document for document in documents}
        chunks = [
            chunk
            for document in latest.values()
            for chunk in chunk_document(document, self.max_chunk_chars, self.chunk_overlap_chars)
        ]
        if not chunks:
            return IndexResult(documents=0, chunks=0, version=self.version(tenant_id))
        rows = chunk_rows(chunks)
        vectors = embed_rows(self.embedder, rows)
        generation = uuid.uuid4().hex
        stamp = random.randint(*_STAMP_RANGE)  # a fingerprint, not a secret
        indexed_at = int(time.time() * 1000)
        actions: list[dict[str, Any]] = []
        for row, vector in zip(rows, vectors, strict=True):
            actions.append({"index": {"_index": self.index_name}})
            actions.append(
                {
                    "tenant_id": tenant_id,
                    "document_id": row.chunk.document_id,
                    "generation": generation,
                    "chunk": row.chunk.ordinal,
                    "kind": row.chunk.kind,
                    "stamp": stamp,
                    "indexed_at": indexed_at,
                    "title": row.chunk.title,
                    "section": row.chunk.section,
                    "text": row.chunk.text,
                    "lead": row.lead,
                    "url": row.chunk.url,
                    TOKENS_FIELD: " ".join(row_tokens(row)),
                    VECTOR_FIELD: [float(x) for x in vector],
                }
            )
        self.ensure_index()
        for start in range(0, len(actions), 2 * BULK_ROWS):
            batch = actions[start : start + 2 * BULK_ROWS]
            response = self.client.bulk(body=batch, params=self._params())
            if response.get("errors"):
                failed = [item for item in response.get("items", []) if item.get("index", {}).get("error")]
                reason = failed[0]["index"]["error"] if failed else "unknown"
                # Remove what got in of the new generation: the previous chunks stay authoritative.
                self.client.delete_by_query(
                    index=self.index_name,
                    body=delete_body(tenant_id, list(latest), only_generation=generation),
                    params=self._params(),
                )
                raise UpstreamError(f"OpenSearch rejected {len(failed)} of {len(batch) // 2} rows: {reason}")
        # Now that the new chunks are in, drop the documents' older chunks.
        self.client.delete_by_query(
            index=self.index_name,
            body=delete_body(tenant_id, list(latest), keep_generation=generation),
            params=self._params(),
        )
        return IndexResult.of(chunks, documents=len(latest), version=self.version(tenant_id))

    def delete_document(self, tenant_id: str, document_id: str) -> bool:
        validate_tenant_id(tenant_id)
        from opensearchpy import NotFoundError

        try:
            response = self.client.delete_by_query(
                index=self.index_name, body=delete_body(tenant_id, [document_id]), params=self._params()
            )
        except NotFoundError:
            return False
        return int(response.get("deleted", 0)) > 0

    def _msearch(self, bodies: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
        """One ``_msearch`` round trip of these searches over this index: their responses in order, or
        None when the index does not exist yet (nothing ingested); any other failure is an UpstreamError."""
        searches = [part for body in bodies for part in ({"index": self.index_name}, body)]
        responses: list[dict[str, Any]] = self.client.msearch(body=searches).get("responses") or []
        if len(responses) != len(bodies):
            raise UpstreamError(f"OpenSearch answered {len(responses)} of {len(bodies)} searches")
        for item in responses:
            if "error" in item:
                if "index_not_found_exception" in str(item["error"]):
                    return None
                raise UpstreamError(f"OpenSearch search failed: {item['error']}")
        return responses

    def version(self, tenant_id: str) -> str:
        validate_tenant_id(tenant_id)
        responses = self._msearch([version_body(tenant_id)])
        return EMPTY_VERSION if responses is None else version_from_response(responses[0])

    def documents(self, tenant_id: str) -> list[DocumentSummary]:
        validate_tenant_id(tenant_id)
        responses = self._msearch([documents_body(tenant_id)])
        return [] if responses is None else documents_from_response(responses[0], tenant_id)

    def sample_questions(self, tenant_id: str, limit: int) -> list[str]:
        validate_tenant_id(tenant_id)
        body = {
            "size": limit,
            "_source": ["lead", "title", "kind"],
            "query": {"bool": {"filter": [tenant_filter(tenant_id)]}},
            "sort": [{"kind": "asc"}, {"chunk": "asc"}],  # "qa" sorts first: FAQ questions lead
        }
        try:
            responses = self._msearch([body])
        except UpstreamError:
            return []  # suggestions are optional: a failed read offers none
        if responses is None:
            return []
        hits = _own_hits(responses[0], tenant_id)
        questions = [str(hit["_source"].get("lead") or hit["_source"].get("title") or "") for hit in hits]
        return [q for q in dict.fromkeys(questions) if q.strip()]

    def search_hits(self, tenant_id: str, query: str, k: int, *, keyword_weight: float | None = None) -> SearchHits:
        validate_tenant_id(tenant_id)
        if k <= 0 or not query.strip():
            return SearchHits(passages=[], version=self.version(tenant_id))
        # Rows, not chunks, come back: fetch deeper so k distinct chunks survive the collapse.
        size = max(self.candidates, 4 * k)
        required = list(dict.fromkeys(tokenize(query)))
        # Pinyin-initial alternatives ("sfz") are searched too, but count in the bound only where
        # some hit's explanation shows the tenant's knowledge has them (as in the local index).
        alternatives = [t for t in alternative_terms(query) if t not in required]
        terms = required + alternatives
        query_vector = self.embedder.embed_query(fold_chinese(query))
        searches = [keyword_search_body(tenant_id, terms, size)] if terms else []
        searches += [vector_search_body(tenant_id, query_vector.tolist(), size), version_body(tenant_id)]
        responses = self._msearch(searches)
        if responses is None:
            return SearchHits(passages=[], version=EMPTY_VERSION)
        version = version_from_response(responses[-1])
        keyword_hits = _own_hits(responses[0], tenant_id) if terms else []
        vector_hits = _own_hits(responses[-2], tenant_id)

        sources: dict[str, Mapping[str, Any]] = {}
        cosines: dict[str, float] = {}
        for hit in vector_hits:
            sources[hit["_id"]] = hit["_source"]
            cosines[hit["_id"]] = inner_product_from_score(float(hit["_score"]))
        for hit in keyword_hits:
            sources.setdefault(hit["_id"], hit["_source"])
            if hit["_id"] not in cosines:
                stored = hit["_source"].get(VECTOR_FIELD)
                vector = np.asarray(stored or [], dtype=np.float32)
                cosines[hit["_id"]] = float(vector @ query_vector) if vector.shape == query_vector.shape else 0.0
        keyword = keyword_ratios_from_hits(required, keyword_hits, alternatives)
        ids = list(sources)
        if not ids:
            return SearchHits(passages=[], version=version)
        ratios = np.asarray([keyword.get(i, 0.0) for i in ids], dtype=np.float32)
        weight = self.keyword_weight if keyword_weight is None else keyword_weight
        scores = fuse(
            ratios,
            np.asarray([cosines[i] for i in ids], dtype=np.float32),
            weight,
            self.embedder.cosine_floor,
            self.embedder.cosine_ceiling,
        )
        groups = [f"{sources[i].get('document_id')}\x00{sources[i].get('chunk', i)}" for i in ids]
        order = rank_groups(scores, ratios, groups, k)
        passages = [
            Passage(
                document_id=str(sources[ids[n]]["document_id"]),
                title=str(sources[ids[n]]["title"]),
                text=str(sources[ids[n]]["text"]),
                url=sources[ids[n]].get("url"),
                section=sources[ids[n]].get("section"),
                score=round(float(scores[n]), 4),
            )
            for n in order
        ]
        return SearchHits(passages=passages, version=version)


def _own_hits(response: Mapping[str, Any], tenant_id: str) -> list[Mapping[str, Any]]:
    # The queries already filter by tenant; checking again costs nothing and guards against a query bug.
    return [
        hit for hit in response.get("hits", {}).get("hits", []) if hit.get("_source", {}).get("tenant_id") == tenant_id
    ]


def build_opensearch_index(settings: Settings, embedder: Embedder) -> OpenSearchIndex:
    return OpenSearchIndex(build_client(settings), settings.opensearch_index, embedder)
