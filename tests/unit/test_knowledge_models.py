"""Embedders and rerankers on Amazon Bedrock (botocore Stubber: the real client, validated request
shapes, no network), and the factory choosing adapters from settings."""

from __future__ import annotations

import io
import json
from typing import Any

import boto3
import numpy as np
import pytest
from botocore.response import StreamingBody
from botocore.stub import ANY, Stubber

from shared.errors import UpstreamError
from shared.knowledge.factory import build_embedder, build_reranker
from shared.knowledge.remote_embedders import BedrockEmbedder, OpenAICompatibleEmbedder
from shared.knowledge.rerank import BedrockReranker, HttpReranker, _scores_by_index, bedrock_model_arn
from shared.knowledge.use_embedder import UseEmbedder
from shared.settings import Settings


@pytest.fixture(autouse=True)
def _credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")


def body(payload: dict[str, Any]) -> dict[str, Any]:
    data = json.dumps(payload).encode()
    return {"body": StreamingBody(io.BytesIO(data), len(data)), "contentType": "application/json"}


def invoke_params(model: str) -> dict[str, Any]:
    return {"modelId": model, "body": ANY, "contentType": "application/json", "accept": "application/json"}


class RecordingStubber(Stubber):
    """A Stubber that also keeps the JSON bodies sent (Stubber only compares them)."""

    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.sent: list[dict[str, Any]] = []
        client.meta.events.register("before-parameter-build.bedrock-runtime.InvokeModel", self._record)

    def _record(self, params: dict[str, Any], **_: Any) -> None:
        self.sent.append(json.loads(params["body"]))


def test_titan_v2_embeds_one_text_per_call_with_dimensions_and_normalisation() -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    stubber = RecordingStubber(client)
    model = "amazon.titan-embed-text-v2:0"
    for value in (1.0, 2.0):
        stubber.add_response(
            "invoke_model", body({"embedding": [value] * 256, "inputTextTokenCount": 3}), invoke_params(model)
        )
    with stubber:
        embedder = BedrockEmbedder(client, model, dimension=256, concurrency=1)
        matrix = embedder.embed_matrix(["first text", "second text"])
    assert matrix.shape == (2, 256) and np.allclose(np.linalg.norm(matrix, axis=1), 1.0)
    assert stubber.sent == [
        {"inputText": "first text", "dimensions": 256, "normalize": True},
        {"inputText": "second text", "dimensions": 256, "normalize": True},
    ]
    stubber.assert_no_pending_responses()


def test_cohere_multilingual_batches_and_embeds_questions_as_queries() -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    stubber = RecordingStubber(client)
    model = "cohere.embed-multilingual-v3"
    stubber.add_response(
        "invoke_model", body({"embeddings": [[0.5] * 1024, [0.1] * 1024], "id": "x"}), invoke_params(model)
    )
    stubber.add_response(
        "invoke_model",
        body({"embeddings": {"float": [[0.3] * 1024]}, "response_type": "embeddings_by_type"}),
        invoke_params(model),
    )
    with stubber:
        embedder = BedrockEmbedder(client, model)
        assert embedder.dimension == 1024
        assert embedder.embed_matrix(["退货政策", "x" * 5000]).shape == (2, 1024)
        assert embedder.embed_query("怎么退货").shape == (1024,)
    documents, query = stubber.sent
    assert documents["input_type"] == "search_document" and query["input_type"] == "search_query"
    assert documents["texts"][0] == "退货政策" and len(documents["texts"][1]) == 2048  # Cohere's per-text limit
    assert query["texts"] == ["怎么退货"] and documents["truncate"] == "END"


def test_bedrock_errors_become_upstream_errors() -> None:
    client = boto3.client("bedrock-runtime", region_name="us-east-1")
    stubber = Stubber(client)
    stubber.add_client_error("invoke_model", "ThrottlingException", "slow down", 429)
    with stubber, pytest.raises(UpstreamError, match="slow down"):
        BedrockEmbedder(client, "amazon.titan-embed-text-v2:0").embed_query("hello")


def test_bedrock_embedder_validates_dimensions() -> None:
    with pytest.raises(ValueError, match="256, 512 or 1024"):
        BedrockEmbedder(object(), "amazon.titan-embed-text-v2:0", dimension=300)
    with pytest.raises(ValueError, match="1024"):
        BedrockEmbedder(object(), "cohere.embed-multilingual-v3", dimension=512)


def test_bedrock_rerank_request_and_scores_in_input_order() -> None:
    client = boto3.client("bedrock-agent-runtime", region_name="us-west-2")
    stubber = Stubber(client)
    arn = "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
    expected = {
        "queries": [{"type": "TEXT", "textQuery": {"text": "refund time"}}],
        "sources": [
            {"type": "INLINE", "inlineDocumentSource": {"type": "TEXT", "textDocument": {"text": t}}}
            for t in ("shipping info", "refunds take 3 days")
        ],
        "rerankingConfiguration": {
            "type": "BEDROCK_RERANKING_MODEL",
            "bedrockRerankingConfiguration": {"numberOfResults": 2, "modelConfiguration": {"modelArn": arn}},
        },
    }
    stubber.add_response(
        "rerank", {"results": [{"index": 1, "relevanceScore": 0.93}, {"index": 0, "relevanceScore": 0.02}]}, expected
    )
    with stubber:
        scores = BedrockReranker(client, arn).rerank("refund time", ["shipping info", "refunds take 3 days"])
    assert scores == [0.02, 0.93]
    stubber.assert_no_pending_responses()


def test_bedrock_rerank_failure_is_an_upstream_error() -> None:
    client = boto3.client("bedrock-agent-runtime", region_name="us-west-2")
    stubber = Stubber(client)
    stubber.add_client_error("rerank", "AccessDeniedException", "no model access", 403)
    with stubber, pytest.raises(UpstreamError, match="no model access"):
        BedrockReranker(client, "arn:x").rerank("q", ["a"])


def test_model_arn_and_score_helpers() -> None:
    assert bedrock_model_arn("cohere.rerank-v3-5:0", "eu-central-1") == (
        "arn:aws:bedrock:eu-central-1::foundation-model/cohere.rerank-v3-5:0"
    )
    assert bedrock_model_arn("arn:aws:bedrock:x", "y") == "arn:aws:bedrock:x"
    # missing entries score 0; raw logits (outside 0..1) go through a sigmoid
    assert _scores_by_index([(2, 0.5), (0, 3.0), (9, 1.0)], 3) == [pytest.approx(0.9526, abs=1e-4), 0.0, 0.5]


# --- choosing adapters from settings ---


def test_default_embedder_is_the_local_use_model() -> None:
    assert isinstance(build_embedder(Settings()), UseEmbedder)
    assert build_reranker(Settings()) is None


def test_bedrock_and_openai_embedders_from_settings() -> None:
    bedrock = build_embedder(
        Settings(
            embedding_provider="bedrock", embedding_dimension=512, embedding_cosine_floor=0.05, aws_region="eu-west-1"
        )
    )
    assert isinstance(bedrock, BedrockEmbedder) and bedrock.dimension == 512 and bedrock.cosine_floor == 0.05
    assert bedrock.model_id == "amazon.titan-embed-text-v2:0"
    openai = build_embedder(
        Settings(
            embedding_provider="openai",
            embedding_base_url="http://gpu:8080/v1/",
            embedding_model="bge-m3",
            embedding_dimension=1024,
        )
    )
    assert isinstance(openai, OpenAICompatibleEmbedder) and openai.url == "http://gpu:8080/v1/embeddings"
    with pytest.raises(ValueError, match="KEFU_EMBEDDING_BASE_URL"):
        build_embedder(Settings(embedding_provider="openai"))


def test_rerankers_from_settings() -> None:
    bedrock = build_reranker(Settings(reranker_provider="bedrock", aws_region="us-west-2"))
    assert isinstance(bedrock, BedrockReranker)
    assert bedrock.model_arn == "arn:aws:bedrock:us-west-2::foundation-model/amazon.rerank-v1:0"
    tei = build_reranker(Settings(reranker_provider="tei", reranker_url="http://gpu:8081"))
    assert isinstance(tei, HttpReranker) and tei.url == "http://gpu:8081/rerank"
    cohere = build_reranker(Settings(reranker_provider="cohere", reranker_url="http://gpu:8000", reranker_model="bge"))
    assert isinstance(cohere, HttpReranker) and cohere.url == "http://gpu:8000/v1/rerank"
    with pytest.raises(ValueError, match="KEFU_RERANKER_URL"):
        build_reranker(Settings(reranker_provider="tei"))
