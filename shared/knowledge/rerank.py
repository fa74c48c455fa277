"""Rerankers: a cross-encoder re-scores the fused candidates of a query, optionally per tenant.

Adapters: Amazon Bedrock rerank models (``bedrock-agent-runtime`` Rerank), TEI's ``POST /rerank``
and the Cohere-style ``POST /v1/rerank`` that vLLM, Infinity and Jina serve. Every adapter returns one
relevance score in 0..1 per text, in the order given; those scores replace the fused ones, so a tenant
that turns reranking on must calibrate its threshold again (the admin calibration does it through the
same path).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any

from shared.errors import UpstreamError
from shared.knowledge.http_json import post_json


class Reranker(ABC):
    name: str

    @abstractmethod
    def rerank(self, query: str, texts: list[str]) -> list[float]:
        """Relevance of each text to the query, 0..1, in the order of ``texts``."""


def bedrock_model_arn(model: str, region: str) -> str:
    """Bedrock's Rerank API wants a model ARN; accept a bare model id too."""
    return model if model.startswith("arn:") else f"arn:aws:bedrock:{region}::foundation-model/{model}"


class BedrockReranker(Reranker):
    name = "bedrock"

    def __init__(self, client: Any, model_arn: str) -> None:
        self.client = client
        self.model_arn = model_arn

    def rerank(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        try:
            response = self.client.rerank(
                queries=[{"type": "TEXT", "textQuery": {"text": query}}],
                sources=[
                    {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": text}}}
                    for text in texts
                ],
                rerankingConfiguration={
                    "type": "BEDROCK_RERANKING_MODEL",
                    "bedrockRerankingConfiguration": {
                        "numberOfResults": len(texts),
                        "modelConfiguration": {"modelArn": self.model_arn},
                    },
                },
            )
        except Exception as error:  # botocore's ClientError and transport errors alike
            raise UpstreamError(f"Bedrock rerank failed: {error}") from error
        return _scores_by_index(
            [(item["index"], item["relevanceScore"]) for item in response.get("results", [])], len(texts)
        )


class HttpReranker(Reranker):
    """An on-prem rerank server: ``wire="tei"`` (TEI ``/rerank``) or ``wire="cohere"`` (``/v1/rerank``)."""

    def __init__(
        self,
        base_url: str,
        wire: str = "tei",
        model: str | None = None,
        api_key: str | None = None,
        timeout_seconds: float = 10.0,
        retries: int = 1,
        client: Any = None,
    ) -> None:
        import httpx

        if wire not in ("tei", "cohere"):
            raise ValueError(f"unknown rerank wire format {wire!r}")
        self.name = wire
        self.wire = wire
        base = base_url.rstrip("/")
        self.url = base + "/rerank" if wire == "tei" else (base if base.endswith("/v1") else base + "/v1") + "/rerank"
        self.model = model
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = client or httpx.Client(timeout=timeout_seconds, headers=headers)

    def _body(self, query: str, texts: list[str]) -> dict[str, Any]:
        if self.wire == "tei":
            # raw_scores false: TEI applies the sigmoid, so scores are 0..1.
            return {"query": query, "texts": texts, "truncate": True, "raw_scores": False, "return_text": False}
        body: dict[str, Any] = {"query": query, "documents": texts, "top_n": len(texts), "return_documents": False}
        if self.model:
            body["model"] = self.model
        return body

    def _parse(self, payload: Any) -> list[tuple[int, float]]:
        if self.wire == "tei":
            return [(int(item["index"]), float(item["score"])) for item in payload]
        return [(int(item["index"]), float(item["relevance_score"])) for item in payload["results"]]

    def rerank(self, query: str, texts: list[str]) -> list[float]:
        if not texts:
            return []
        pairs = post_json(
            self._http, self.url, self._body(query, texts), read=self._parse, what="rerank server", retries=self.retries
        )
        return _scores_by_index(pairs, len(texts))


def _scores_by_index(pairs: list[tuple[int, float]], count: int) -> list[float]:
    """Scores back in input order; a text the server left out scores 0. Raw logits become 0..1."""
    scores = [0.0] * count
    for index, score in pairs:
        if 0 <= index < count:
            scores[index] = score if 0.0 <= score <= 1.0 else 1.0 / (1.0 + math.exp(-score))
    return scores
