"""The retrieval port as the generate function sees it: the retrieve function, or an index directly."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from shared.errors import UpstreamError, describe_validation_error
from shared.knowledge.base import KnowledgeIndex, Passage
from shared.knowledge.retrieve_contract import RetrieveRequest, RetrieveResponse


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
        request = RetrieveRequest(tenant_id=tenant_id, query=query, k=k)
        payload = request.model_dump_json(by_alias=True).encode()
        response = self._client.invoke(FunctionName=self._function, Payload=payload)
        body: Any = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError") or not isinstance(body, dict) or "passages" not in body:
            raise UpstreamError(f"retrieve failed: {str(body)[:300]}")
        try:
            answer = RetrieveResponse.model_validate(body)
        except ValidationError as exc:
            raise UpstreamError(f"retrieve returned a malformed answer: {describe_validation_error(exc)}") from None
        # An older retrieve function sends no version: then nothing is cached.
        return RetrievalResult(
            passages=[p.to_passage() for p in answer.passages], knowledge_version=answer.knowledge_version or None
        )
