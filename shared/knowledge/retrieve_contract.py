"""The retrieve function's contract: the one definition of its request, response and failure, used
by both sides (the retrieve handler validates with it; the generate function's LambdaRetriever builds
and parses with it).

Wire format (camelCase, what the generate function sends with ``lambda.invoke``)::

    request:  {"tenantId": "acme", "query": "how long does shipping take?", "k": 4}
    response: {"passages": [{"documentId", "title", "section", "text", "url", "score"}, ...],
               "knowledgeVersion": "…", "configVersion": "…", "bestScore": 0.71, "threshold": 0.42,
               "matched": true, "reranked": false}
    failure:  {"error": {"code": "bad_request", "message": "..."}}

``passages`` holds only passages scoring at least the tenant's threshold (RetrievalConfig
.min_answer_score, else Settings.min_answer_score) and the other chunks of their entries, best
first: an empty list with ``matched`` false means "no good answer" (``bestScore`` still tells how
close the best passage came). ``knowledgeVersion`` changes whenever the tenant's knowledge changes;
``configVersion`` whenever the settings that shaped the result do (threshold, weight, reranking, k):
answer caches key on both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import ConfigDict, Field, ValidationError, field_validator

from shared.config_section import CamelModel
from shared.errors import BadRequest, describe_validation_error
from shared.knowledge.base import Passage
from shared.knowledge.ids import validate_tenant_id

if TYPE_CHECKING:
    from shared.knowledge.search import RetrievalOutcome


MAX_QUERY_CHARS = 8192


class _CamelModel(CamelModel):
    # Unknown fields are ignored, so either side can be deployed first with a new optional field.
    model_config = ConfigDict(extra="ignore")


class RetrieveRequest(_CamelModel):
    tenant_id: str = Field(min_length=1, max_length=128)
    query: str = Field(min_length=1, max_length=MAX_QUERY_CHARS)
    # None: the deployment's default (Settings.retrieve_top_k).
    k: int | None = Field(default=None, ge=1, le=20)

    @field_validator("tenant_id")
    @classmethod
    def _safe_tenant_id(cls, value: str) -> str:
        try:
            return validate_tenant_id(value)
        except BadRequest as error:
            raise ValueError(error.message) from None

    @field_validator("query")
    @classmethod
    def _query_has_text(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("query is blank")
        return value


class RetrievedPassage(_CamelModel):
    document_id: str
    title: str
    section: str | None = None
    text: str
    url: str | None = None
    score: float

    @classmethod
    def from_passage(cls, passage: Passage) -> RetrievedPassage:
        return cls(
            document_id=passage.document_id,
            title=passage.title,
            section=passage.section,
            text=passage.text,
            url=passage.url,
            score=passage.score,
        )

    def to_passage(self) -> Passage:
        return Passage(
            document_id=self.document_id,
            title=self.title,
            section=self.section,
            text=self.text,
            url=self.url,
            score=self.score,
        )


class RetrieveResponse(_CamelModel):
    passages: list[RetrievedPassage]
    # Defaults: what an older retrieve function (passages only) means: no version, so nothing cached.
    knowledge_version: str = ""
    best_score: float | None = None
    threshold: float = 0.0
    matched: bool = False
    reranked: bool = False
    config_version: str = ""

    @classmethod
    def from_outcome(cls, outcome: RetrievalOutcome) -> RetrieveResponse:
        return cls(
            passages=[RetrievedPassage.from_passage(p) for p in outcome.passages],
            knowledge_version=outcome.knowledge_version,
            best_score=outcome.best_score,
            threshold=outcome.threshold,
            matched=outcome.matched,
            reranked=outcome.reranked,
            config_version=outcome.config_version,
        )

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)

    def log_summary(self) -> dict[str, Any]:
        """What the retrieve function logs about its answer (no passage text)."""
        return {
            "passages": len(self.passages),
            "best_score": self.best_score,
            "threshold": self.threshold,
            "matched": self.matched,
            "knowledge_version": self.knowledge_version,
        }


class RetrieveFailure(_CamelModel):
    """``{"error": {"code", "message"}}``: the request was refused or the search failed."""

    class Detail(_CamelModel):
        code: str
        message: str

    error: Detail


def retrieve_error(code: str, message: str) -> dict[str, object]:
    return RetrieveFailure(error=RetrieveFailure.Detail(code=code, message=message)).model_dump(by_alias=True)


def parse_request(event: object) -> RetrieveRequest:
    """The request in a Lambda invocation payload, or BadRequest saying what is wrong."""
    if not isinstance(event, dict):
        raise BadRequest("the payload must be a JSON object with tenantId and query")
    try:
        return RetrieveRequest.model_validate(event)
    except ValidationError as error:
        raise BadRequest(describe_validation_error(error)) from None
