"""The retrieval port as the generate function sees it: the retrieve function, or an index directly."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from typing import Any

from shared.errors import UpstreamError
from shared.knowledge.base import KnowledgeIndex, Passage


class Retriever(ABC):
    @abstractmethod
    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]: ...


class IndexRetriever(Retriever):
    """Searches an index in-process (the admin search endpoint and the retrieve function use this)."""

    def __init__(self, index: KnowledgeIndex) -> None:
        self._index = index

    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        return self._index.search(tenant_id, query, k)


class LambdaRetriever(Retriever):
    """Invokes the retrieve function synchronously (boto3 Lambda Invoke)."""

    def __init__(self, client: Any, function_name: str) -> None:
        self._client = client
        self._function = function_name

    def retrieve(self, tenant_id: str, query: str, k: int) -> list[Passage]:
        payload = json.dumps({"tenantId": tenant_id, "query": query, "k": k}).encode()
        response = self._client.invoke(FunctionName=self._function, Payload=payload)
        body: Any = json.loads(response["Payload"].read() or b"null")
        if response.get("FunctionError") or not isinstance(body, dict) or "passages" not in body:
            raise UpstreamError(f"retrieve failed: {str(body)[:300]}")
        return [
            Passage(
                document_id=p["documentId"],
                title=p["title"],
                text=p["text"],
                url=p.get("url"),
                score=p["score"],
            )
            for p in body["passages"]
        ]
