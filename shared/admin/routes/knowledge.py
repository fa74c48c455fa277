from __future__ import annotations

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from shared.admin.deps import ExistingTenant, Index
from shared.chat.retriever import IndexRetriever
from shared.errors import NotFound
from shared.knowledge.base import Document

router = APIRouter(prefix="/v1/tenants/{tenant_id}/knowledge", tags=["knowledge"])


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class IngestDocuments(BaseModel):
    documents: list[Document] = Field(min_length=1, max_length=500)


class Indexed(_Camel):
    documents: int
    chunks: int


class SearchResult(_Camel):
    document_id: str
    title: str
    snippet: str
    url: str | None = None
    score: float


class SearchResults(_Camel):
    results: list[SearchResult]


@router.post("", response_model=Indexed, response_model_by_alias=True)
def ingest(body: IngestDocuments, tenant: ExistingTenant, index: Index) -> Indexed:
    """Add or replace documents (a document id indexed again replaces its passages)."""
    result = index.index(tenant.tenant_id, body.documents)
    return Indexed(documents=result.documents, chunks=result.chunks)


@router.get("/search", response_model=SearchResults, response_model_by_alias=True)
def search(
    tenant: ExistingTenant,
    index: Index,
    q: str = Query(min_length=1, max_length=2000),
    k: int = Query(default=5, ge=1, le=50),
) -> SearchResults:
    """The same retrieval the bot uses, so a recall test here matches what visitors get."""
    passages = IndexRetriever(index).retrieve(tenant.tenant_id, q, k)
    return SearchResults(
        results=[
            SearchResult(document_id=p.document_id, title=p.title, snippet=p.snippet(), url=p.url, score=p.score)
            for p in passages
        ]
    )


@router.delete("/{document_id}", status_code=204)
def delete_document(document_id: str, tenant: ExistingTenant, index: Index) -> None:
    if not index.delete_document(tenant.tenant_id, document_id):
        raise NotFound(f"document {document_id!r} is not in the knowledge base")
