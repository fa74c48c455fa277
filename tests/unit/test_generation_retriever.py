"""The retrieval port as generate sees it: the retrieve function's answer, knowledge version included."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from shared.errors import UpstreamError
from shared.knowledge.retrieve_client import LambdaRetriever

PASSAGE = {
    "documentId": "returns",
    "title": "Returns",
    "section": "Refunds",
    "text": "30 days.",
    "url": None,
    "score": 0.8,
}


class FakeLambda:
    def __init__(self, body: Any, function_error: bool = False) -> None:
        self.body = body
        self.function_error = function_error
        self.calls: list[dict[str, Any]] = []

    def invoke(self, **request: Any) -> dict[str, Any]:
        self.calls.append(request)
        response: dict[str, Any] = {"Payload": io.BytesIO(json.dumps(self.body).encode())}
        if self.function_error:
            response["FunctionError"] = "Unhandled"
        return response


def test_passages_and_the_knowledge_version_come_back() -> None:
    client = FakeLambda({"passages": [PASSAGE], "knowledgeVersion": "kv-42", "threshold": 0.4, "matched": True})

    result = LambdaRetriever(client, "kefu-retrieve").search("acme", "refund?", 4)

    assert result.knowledge_version == "kv-42"
    assert [(p.document_id, p.section, p.score) for p in result.passages] == [("returns", "Refunds", 0.8)]
    assert json.loads(client.calls[0]["Payload"]) == {"tenantId": "acme", "query": "refund?", "k": 4}


def test_an_older_retrieve_function_without_a_version_still_works_uncached() -> None:
    result = LambdaRetriever(FakeLambda({"passages": [PASSAGE]}), "kefu-retrieve").search("acme", "q", 4)

    assert result.knowledge_version is None and len(result.passages) == 1


@pytest.mark.parametrize(
    ("body", "function_error"),
    [({"error": {"code": "bad_request", "message": "query is blank"}}, False), ({"errorMessage": "boom"}, True)],
)
def test_a_failed_retrieval_is_an_upstream_error(body: Any, function_error: bool) -> None:
    with pytest.raises(UpstreamError, match="retrieve failed"):
        LambdaRetriever(FakeLambda(body, function_error), "kefu-retrieve").search("acme", "q", 4)


def test_a_malformed_passage_is_an_upstream_error_not_a_crash() -> None:
    with pytest.raises(UpstreamError, match="malformed answer: passages.0.documentId: Field required"):
        LambdaRetriever(FakeLambda({"passages": [{"title": "no id"}]}), "kefu-retrieve").search("acme", "q", 4)
