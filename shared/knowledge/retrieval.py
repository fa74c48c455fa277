"""The retrieve function's contract and logic: a tenant's question in, ranked passages out.

Wire format (camelCase, what the generate function sends with ``lambda.invoke``)::

    request:  {"tenantId": "acme", "query": "how long does shipping take?", "k": 4}
    response: {"passages": [{"documentId", "title", "section", "text", "url", "score"}, ...],
               "knowledgeVersion": "…", "configVersion": "…", "bestScore": 0.71, "threshold": 0.42,
               "matched": true, "reranked": false}
    failure:  {"error": {"code": "bad_request", "message": "..."}}

``passages`` holds only passages scoring at least the tenant's threshold (RetrievalConfig
.min_answer_score, else Settings.min_answer_score) and the other chunks of their entries, best
first: an empty list with ``matched`` false
means "no good answer" (``bestScore`` still tells how close the best passage came).
``knowledgeVersion`` changes whenever the tenant's knowledge changes; ``configVersion`` whenever the
settings that shaped the result do (threshold, weight, reranking, k): answer caches key on both.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from shared.errors import BadRequest
from shared.knowledge.base import Passage
from shared.knowledge.config import RetrievalConfig
from shared.knowledge.ids import validate_tenant_id
from shared.knowledge.service import KnowledgeService, RetrievalOutcome
from shared.state.store import StateStore
from shared.tenant_config import TenantConfigCache

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
    knowledge_version: str
    best_score: float | None = None
    threshold: float
    matched: bool
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


class TenantConfigSource(ABC):
    @abstractmethod
    def retrieval_config(self, tenant_id: str) -> RetrievalConfig:
        """The tenant's retrieval settings (defaults for a tenant without any)."""


class StaticConfigs(TenantConfigSource):
    """Fixed settings for every tenant (tests, benchmarks, tools without a state store)."""

    def __init__(self, config: RetrievalConfig | None = None) -> None:
        self.config = config or RetrievalConfig()

    def retrieval_config(self, tenant_id: str) -> RetrievalConfig:
        return self.config


class StoredTenantConfigs(TenantConfigSource):
    """Reads the tenant record (StateStore.get_tenant) and keeps its RetrievalConfig ``ttl_seconds``:
    a threshold calibrated in the admin API reaches every warm retrieve function within that time."""

    def __init__(self, store: StateStore, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._configs = TenantConfigCache(store.tenant_config, ttl_seconds, clock)

    def retrieval_config(self, tenant_id: str) -> RetrievalConfig:
        config = self._configs.get(tenant_id)
        # An unknown tenant searches with defaults and finds nothing: its index is empty.
        return config.retrieval if config is not None else RetrievalConfig()


class RetrieveService:
    """What the retrieve function does, behind its handler: the tenant's settings, then the shared
    search path (KnowledgeService) that the admin recall test uses too."""

    def __init__(self, knowledge: KnowledgeService, configs: TenantConfigSource) -> None:
        self.knowledge = knowledge
        self.configs = configs

    def retrieve(self, request: RetrieveRequest) -> RetrieveResponse:
        config = self.configs.retrieval_config(request.tenant_id)
        outcome = self.knowledge.search(request.tenant_id, config, request.query, request.k)
        return RetrieveResponse.from_outcome(outcome)
