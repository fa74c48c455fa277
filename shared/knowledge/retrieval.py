"""The retrieve function's contract and logic: a tenant's question in, ranked passages out.

Wire format (camelCase, what the generate function sends with ``lambda.invoke``)::

    request:  {"tenantId": "acme", "query": "how long does shipping take?", "k": 4}
    response: {"passages": [{"documentId", "title", "text", "url", "score"}, ...]}
    failure:  {"error": {"code": "bad_request", "message": "..."}}
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shared.errors import BadRequest
from shared.knowledge.base import KnowledgeIndex, Passage
from shared.knowledge.ids import validate_tenant_id

MAX_QUERY_CHARS = 8192


class _CamelModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


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
    text: str
    url: str | None = None
    score: float

    @classmethod
    def from_passage(cls, passage: Passage) -> RetrievedPassage:
        return cls(
            document_id=passage.document_id,
            title=passage.title,
            text=passage.text,
            url=passage.url,
            score=passage.score,
        )

    def to_passage(self) -> Passage:
        return Passage(document_id=self.document_id, title=self.title, text=self.text, url=self.url, score=self.score)


class RetrieveResponse(_CamelModel):
    passages: list[RetrievedPassage]

    def to_wire(self) -> dict[str, object]:
        return self.model_dump(by_alias=True)


def describe_validation_error(error: ValidationError) -> str:
    """One line naming each bad field and why (no input echoed back)."""
    problems = []
    for item in error.errors(include_input=False, include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "request"
        problems.append(f"{where}: {item['msg']}")
    return "; ".join(problems)


def parse_request(event: object) -> RetrieveRequest:
    """The request in a Lambda invocation payload, or BadRequest saying what is wrong."""
    if not isinstance(event, dict):
        raise BadRequest("the payload must be a JSON object with tenantId and query")
    try:
        return RetrieveRequest.model_validate(event)
    except ValidationError as error:
        raise BadRequest(describe_validation_error(error)) from None


class RetrieveService:
    """What the retrieve function does, behind its handler: search the tenant's index."""

    def __init__(self, index: KnowledgeIndex, default_k: int) -> None:
        self.index = index
        self.default_k = default_k

    def retrieve(self, request: RetrieveRequest) -> RetrieveResponse:
        passages = self.index.search(request.tenant_id, request.query, request.k or self.default_k)
        return RetrieveResponse(passages=[RetrievedPassage.from_passage(p) for p in passages])
