"""Remote embedding models behind the Embedder port: Amazon Bedrock and OpenAI-compatible servers.

The local USE encoder (shared/knowledge/use_embedder.py) is the default; these are chosen by settings
(``KEFU_EMBEDDING_PROVIDER``). Every adapter returns unit vectors of ``dimension`` floats, so dot
product == cosine for both index backends. An index must be rebuilt when the model changes (the local
index checks the dimension; scores from two models are not comparable anyway).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np

from shared.errors import UpstreamError
from shared.knowledge.base import Embedder
from shared.knowledge.http_json import post_json
from shared.knowledge.vectors import unit_rows

if TYPE_CHECKING:
    from numpy.typing import NDArray

# Remote models place unrelated texts lower than USE does (cosines near 0.0-0.2 rather than 0.1-0.35).
REMOTE_COSINE_FLOOR = 0.1
REMOTE_COSINE_CEILING = 0.7
TITAN_DIMENSIONS = (256, 512, 1024)
COHERE_DIMENSION = 1024
COHERE_BATCH = 96  # texts per InvokeModel call (Cohere's limit on Bedrock)
COHERE_MAX_CHARS = 2048  # per text (Cohere's limit on Bedrock); longer texts are cut


def _blank_safe(texts: list[str]) -> list[str]:
    # Every provider rejects empty strings; an empty chunk text cannot happen, a blank query can.
    return [text if text.strip() else "-" for text in texts]


class BedrockEmbedder(Embedder):
    """Amazon Bedrock text embeddings through ``bedrock-runtime`` InvokeModel.

    - Titan Text Embeddings v2 (``amazon.titan-embed-text-v2:0``): one text per call, so calls run
      ``concurrency`` at a time; ``dimensions`` 256/512/1024, normalised by the service.
    - Cohere Embed multilingual v3 (``cohere.embed-multilingual-v3``): up to 96 texts per call, with
      ``input_type`` search_document for passages and search_query for questions (Cohere's asymmetric
      mode: questions and passages are embedded differently).
    """

    cosine_floor = REMOTE_COSINE_FLOOR
    cosine_ceiling = REMOTE_COSINE_CEILING

    def __init__(self, client: Any, model_id: str, dimension: int | None = None, concurrency: int = 8) -> None:
        self.client = client
        self.model_id = model_id
        self.family = "cohere" if model_id.split(".", 1)[0] == "cohere" or "cohere." in model_id else "titan"
        if self.family == "cohere":
            if dimension not in (None, COHERE_DIMENSION):
                raise ValueError(f"{model_id} returns {COHERE_DIMENSION}-d vectors, not {dimension}")
            self.dimension = COHERE_DIMENSION
        else:
            self.dimension = dimension or 1024
            if self.dimension not in TITAN_DIMENSIONS:
                raise ValueError(f"Titan v2 embeddings have 256, 512 or 1024 dimensions, not {self.dimension}")
        self.concurrency = max(1, concurrency)

    def _invoke(self, body: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.client.invoke_model(
                modelId=self.model_id,
                body=json.dumps(body).encode("utf-8"),
                contentType="application/json",
                accept="application/json",
            )
            payload: dict[str, Any] = json.loads(response["body"].read())
        except Exception as error:  # botocore's ClientError and transport errors alike
            raise UpstreamError(f"Bedrock embedding model {self.model_id} failed: {error}") from error
        return payload

    def _titan(self, text: str) -> list[float]:
        payload = self._invoke({"inputText": text, "dimensions": self.dimension, "normalize": True})
        vector = payload.get("embedding")
        if not isinstance(vector, list):
            raise UpstreamError(f"Bedrock {self.model_id} returned no embedding")
        return vector

    def _cohere(self, texts: list[str], input_type: str) -> list[list[float]]:
        body = {
            "texts": [text[:COHERE_MAX_CHARS] for text in texts],
            "input_type": input_type,
            "truncate": "END",
        }
        embeddings = self._invoke(body).get("embeddings")
        if isinstance(embeddings, dict):  # the shape when embedding_types was given
            embeddings = embeddings.get("float")
        if not isinstance(embeddings, list) or len(embeddings) != len(texts):
            raise UpstreamError(f"Bedrock {self.model_id} returned {len(embeddings or [])} of {len(texts)} embeddings")
        return embeddings

    def _matrix(self, texts: list[str], input_type: str) -> NDArray[np.float32]:
        texts = _blank_safe(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.family == "cohere":
            rows = [
                row
                for start in range(0, len(texts), COHERE_BATCH)
                for row in self._cohere(texts[start : start + COHERE_BATCH], input_type)
            ]
        elif len(texts) == 1:
            rows = [self._titan(texts[0])]
        else:
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(texts))) as pool:
                rows = list(pool.map(self._titan, texts))
        matrix = np.asarray(rows, dtype=np.float32)
        if matrix.shape != (len(texts), self.dimension):
            raise UpstreamError(f"Bedrock {self.model_id} returned vectors of shape {matrix.shape}")
        return unit_rows(matrix)

    def embed(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = self.embed_matrix(texts).tolist()
        return rows

    def embed_matrix(self, texts: list[str]) -> NDArray[np.float32]:
        return self._matrix(texts, "search_document")

    def embed_query(self, query: str) -> NDArray[np.float32]:
        vector: NDArray[np.float32] = self._matrix([query], "search_query")[0]
        return vector


class OpenAICompatibleEmbedder(Embedder):
    """``POST {base_url}/embeddings`` as OpenAI defines it; served by TEI, vLLM, Ollama, LocalAI, ...

    Request ``{"model", "input": [texts], "encoding_format": "float"}``; response
    ``{"data": [{"index", "embedding"}]}``. Batches of ``batch_size``, up to ``concurrency`` in flight
    (a GPU server batches concurrent requests itself; one at a time, an upload would wait on every
    round trip); 429/5xx are retried twice.
    """

    cosine_floor = REMOTE_COSINE_FLOOR
    cosine_ceiling = REMOTE_COSINE_CEILING

    def __init__(
        self,
        base_url: str,
        model: str,
        dimension: int,
        api_key: str | None = None,
        timeout_seconds: float = 30.0,
        batch_size: int = 32,
        retries: int = 2,
        client: Any = None,
        concurrency: int = 4,
    ) -> None:
        import httpx

        self.url = base_url.rstrip("/") + "/embeddings"
        self.model = model
        self.dimension = dimension
        self.batch_size = batch_size
        self.concurrency = max(1, concurrency)
        self.retries = retries
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = client or httpx.Client(timeout=timeout_seconds, headers=headers)

    def _post(self, texts: list[str]) -> list[list[float]]:
        body = {"model": self.model, "input": texts, "encoding_format": "float"}
        return post_json(self._http, self.url, body, read=_embeddings, what="embedding server", retries=self.retries)

    def embed(self, texts: list[str]) -> list[list[float]]:
        rows: list[list[float]] = self.embed_matrix(texts).tolist()
        return rows

    def embed_matrix(self, texts: list[str]) -> NDArray[np.float32]:
        texts = _blank_safe(texts)
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        if len(batches) == 1 or self.concurrency == 1:
            replies = [self._post(batch) for batch in batches]
        else:
            # httpx.Client is thread-safe; map keeps the batches' order.
            with ThreadPoolExecutor(max_workers=min(self.concurrency, len(batches))) as pool:
                replies = list(pool.map(self._post, batches))
        matrix = np.asarray([row for reply in replies for row in reply], dtype=np.float32)
        if matrix.shape != (len(texts), self.dimension):
            raise UpstreamError(
                f"embedding server returned vectors of shape {matrix.shape}; expected "
                f"({len(texts)}, {self.dimension}) (check KEFU_EMBEDDING_DIMENSION)"
            )
        return unit_rows(matrix)


def _embeddings(payload: Any) -> list[list[float]]:
    """An OpenAI ``/embeddings`` answer's vectors, in input order."""
    return [item["embedding"] for item in sorted(payload["data"], key=lambda item: item["index"])]
