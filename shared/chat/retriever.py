"""The retrieval port as the generate function sees it: the retrieve function, or an index directly."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from shared.errors import UpstreamError
from shared.knowledge.base import KnowledgeIndex, Passage


@dataclass(frozen=True)
class RetrievalResult:
    """Passages, best first, and the version of the tenant's knowledge they came from. The version is
    None when the retriever does not report one (then answers are not cached)."""

    passages: list[Passage]
    knowledge_version: str | None = None


class Retriever(ABC):
    @abstractmethod
    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]: ...

    def search(self, tenant_id: str, query: str, k: int) -> RetrievalResult:
        """Passages with the knowledge version; adapters that know the version override this."""
        return RetrievalResult(passages=self.retrieve(tenant_id, query, k))


class IndexRetriever(Retriever):
    """Searches an index in-process (the admin search endpoint and the retrieve function use this)."""

    def __init__(self, index: KnowledgeIndex) -> None:
        self._index = index

    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        return self._index.search(tenant_id, query, k)

    def search(self, tenant_id: str, query: str, k: int) -> RetrievalResult:
        hits = self._index.search_hits(tenant_id, query, k)
        return RetrievalResult(passages=hits.passages, knowledge_version=hits.version or None)


class LambdaRetriever(Retriever):
    """Invokes the retrieve function synchronously (boto3 Lambda Invoke)."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function = function_name

    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        return self.search(tenant_id, query, k).passages

    def search(self, tenant_id: str, query: str, k: int) -> RetrievalResult:
        payload = json.dumps({"tenantId": tenant_id, "query": query, "k": k}).encode()
        response = self._client.invoke(FunctionName=self._function, Payload=payload)
        body: Any = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError") or not isinstance(body, dict) or "passages" not in body:
            raise UpstreamError(f"retrieve failed: {str(body)[:300]}")
        version = body.get("knowledgeVersion")
        try:
            passages = [
                Passage(
                    document_id=p["documentId"],
                    title=p["title"],
                    section=p.get("section"),
                    text=p["text"],
                    url=p.get("url"),
                    score=p["score"],
                )
                for p in body["passages"]
            ]
        except (KeyError, TypeError, ValueError) as exc:
            raise UpstreamError(f"retrieve returned a malformed passage: {exc!r}") from None
        # An older retrieve function sends no version: then nothing is cached.
        known = version if isinstance(version, str) and version else None
        return RetrievalResult(passages=passages, knowledge_version=known)
