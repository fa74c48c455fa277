"""A tenant's knowledge base: ingest (JSON documents or uploaded files), search (the recall test: the
bot's own retrieval path), calibrate the "no good answer" threshold, delete, version."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shared.admin.deps import ExistingTenant, Store
from shared.config_section import CamelModel
from shared.errors import NotFound
from shared.ingest.service import FileMetadata, FilesIndexed, IngestLimits, KnowledgeIngestion
from shared.ingest.uploads import UploadRequest, Uploads, UploadTicket, UploadView
from shared.knowledge.base import Document, DocumentSummary
from shared.knowledge.calibration import CalibrationReport, CalibrationRequest, calibrate
from shared.knowledge.search import KnowledgeService
from shared.settings import get_settings

router = APIRouter(prefix="/v1/tenants/{tenant_id}/knowledge", tags=["knowledge"])


def _knowledge() -> KnowledgeService:
    from shared.wiring import knowledge_service

    return knowledge_service()


Knowledge = Annotated[KnowledgeService, Depends(_knowledge)]


def _ingestion(store: Store, knowledge: Knowledge) -> KnowledgeIngestion:
    return KnowledgeIngestion(store, knowledge, IngestLimits.from_settings(get_settings()))


def _uploads() -> Uploads:
    from shared.wiring import uploads

    return uploads()


Ingestion = Annotated[KnowledgeIngestion, Depends(_ingestion)]
UploadsService = Annotated[Uploads, Depends(_uploads)]


class IngestDocuments(BaseModel):
    documents: list[Document] = Field(min_length=1, max_length=500)


class Indexed(CamelModel):
    documents: int
    chunks: int
    knowledge_version: str
    # The "no good answer" threshold after the write (recalibrated from the new knowledge unless the
    # tenant switched automatic calibration off), and its expected rates.
    threshold: float | None = None
    calibration: CalibrationReport | None = None


class SearchResult(CamelModel):
    document_id: str
    title: str
    section: str | None = None
    snippet: str
    text: str
    url: str | None = None
    score: float
    above_threshold: bool


class SearchResults(CamelModel):
    results: list[SearchResult]
    best_score: float | None
    threshold: float
    matched: bool
    reranked: bool
    knowledge_version: str
    config_version: str


class Deleted(CamelModel):
    document_id: str
    deleted: bool
    knowledge_version: str
    threshold: float | None = None


class Version(CamelModel):
    knowledge_version: str


class ListedDocument(CamelModel):
    document_id: str
    title: str
    url: str | None = None
    chunks: int


class DocumentList(CamelModel):
    documents: list[ListedDocument]
    knowledge_version: str


@router.post("", response_model=Indexed, response_model_by_alias=True)
def ingest(body: IngestDocuments, tenant: ExistingTenant, ingestion: Ingestion) -> Indexed:
    """Add or replace documents (a document id indexed again replaces its passages). A document is
    ``text`` or structured ``blocks`` (``qa`` pairs, ``table``s, ``text`` under a ``section``). The
    tenant's threshold is then recalibrated from the new knowledge (``calibration``)."""
    result = ingestion.index_documents(tenant, body.documents)
    return Indexed(
        documents=result.documents,
        chunks=result.chunks,
        knowledge_version=result.knowledge_version,
        threshold=result.threshold,
        calibration=result.calibration,
    )


@router.post(
    "/files",
    response_model=FilesIndexed,
    response_model_by_alias=True,
    responses={207: {"model": FilesIndexed, "description": "some files were refused (see files[].error)"}},
)
def ingest_files(
    tenant: ExistingTenant,
    ingestion: Ingestion,
    files: Annotated[list[UploadFile], File(description="PDF, DOCX, XLSX, CSV, JSON (FAQ), Markdown, HTML, text")],
    document_id: Annotated[str | None, Form(alias="documentId", max_length=256)] = None,
    title: Annotated[str | None, Form(max_length=512)] = None,
    url: Annotated[str | None, Form(max_length=2048)] = None,
) -> Any:
    """Upload small files in the request itself (API Gateway caps a request at ~6 MB and 30 s: use
    ``POST …/knowledge/uploads`` for any size). Each file becomes one document (id: its file name, or
    ``documentId`` for a single file), replacing an earlier upload of the same name. A file that cannot
    be used gets its own 4xx in ``files[]`` while the others are indexed: 200 when all were, 207 when
    some were, else the first file's status."""
    metadata = FileMetadata(document_id=document_id, title=title, url=url)
    body = ingestion.ingest_files(tenant, [(upload.filename or "", upload.file) for upload in files], metadata)
    return JSONResponse(status_code=body.status, content=body.model_dump(mode="json", by_alias=True))


@router.post("/uploads", response_model=UploadTicket, response_model_by_alias=True, status_code=201)
def start_upload(tenant: ExistingTenant, uploads: UploadsService, body: UploadRequest) -> UploadTicket:
    """A presigned S3 upload for one file of any size up to the deployment's limit: POST ``fields`` and
    then the file (form field ``file``) to ``url`` before ``expiresAt``. S3 accepts only this key, this
    ``contentType`` and at most ``size`` bytes. The file is then parsed and indexed asynchronously:
    poll ``GET …/knowledge/uploads/{uploadId}`` (pending, parsing, embedding, indexed or failed)."""
    return uploads.start(tenant.tenant_id, body)


@router.get("/uploads/{upload_id}", response_model=UploadView, response_model_by_alias=True)
def upload_status(upload_id: str, tenant: ExistingTenant, uploads: UploadsService) -> UploadView:
    """An upload's progress: ``pending`` (no file yet), ``parsing``, ``embedding``, then ``indexed``
    (``documentId``, ``chunks``, ``knowledgeVersion``) or ``failed`` (``error.code`` and ``error.message``)."""
    return uploads.view(tenant.tenant_id, upload_id)


@router.get("/search", response_model=SearchResults, response_model_by_alias=True)
def search(
    tenant: ExistingTenant,
    knowledge: Knowledge,
    q: str = Query(min_length=1, max_length=2000),
    k: int = Query(default=5, ge=1, le=50),
    all: bool = Query(  # noqa: A002
        default=True,
        description="also list passages under the threshold (aboveThreshold false); false: only what the bot gets",
    ),
) -> SearchResults:
    """The bot's own retrieval (same weights, reranker and threshold as the retrieve function), so a
    recall test here matches what visitors get: the bot is given exactly the results marked
    ``aboveThreshold``; ``matched`` false means it would decline."""
    outcome = knowledge.search(tenant.tenant_id, tenant.config.retrieval, q, k, include_below_threshold=all)
    return SearchResults(
        results=[
            SearchResult(
                document_id=p.document_id,
                title=p.title,
                section=p.section,
                snippet=p.snippet(),
                text=p.text,
                url=p.url,
                score=p.score,
                above_threshold=p.score >= outcome.threshold,
            )
            for p in outcome.passages
        ],
        best_score=outcome.best_score,
        threshold=outcome.threshold,
        matched=outcome.matched,
        reranked=outcome.reranked,
        knowledge_version=outcome.knowledge_version,
        config_version=outcome.config_version,
    )


@router.get("", response_model=DocumentList, response_model_by_alias=True)
def list_documents(tenant: ExistingTenant, knowledge: Knowledge) -> DocumentList:
    """The tenant's documents (sorted by id; ``documentId`` is what ``DELETE …/knowledge/{id}`` takes)."""
    listed: list[DocumentSummary] = knowledge.index.documents(tenant.tenant_id)
    return DocumentList(
        documents=[ListedDocument(**summary.model_dump()) for summary in listed],
        knowledge_version=knowledge.index.version(tenant.tenant_id),
    )


@router.get("/version", response_model=Version, response_model_by_alias=True)
def version(tenant: ExistingTenant, knowledge: Knowledge) -> Version:
    """Changes on every ingest, replace or delete (answer caches key on it)."""
    return Version(knowledge_version=knowledge.index.version(tenant.tenant_id))


@router.post("/calibrate", response_model=CalibrationReport, response_model_by_alias=True)
def calibrate_threshold(
    tenant: ExistingTenant, store: Store, knowledge: Knowledge, body: CalibrationRequest | None = None
) -> CalibrationReport:
    """Set the tenant's "no good answer" threshold (done on every upload too): off-topic probes in the
    knowledge's languages and near misses made from its own words (or ``offTopic``), run through the
    bot's retrieval path, ``targetDecline`` of them declined (kept for later uploads); reports the
    expected answer rate on the knowledge's own questions, reworded and as written (or ``inScope``),
    and at other decline targets (``tradeoff``). ``apply`` false only measures."""
    request = body or CalibrationRequest()
    report, updated = calibrate(knowledge, tenant.tenant_id, tenant.config.retrieval, request)
    if request.apply:
        config = tenant.config.model_copy(update={"retrieval": updated})
        store.put_tenant(tenant.model_copy(update={"config": config}))
    return report


@router.delete("/{document_id:path}", response_model=Deleted, response_model_by_alias=True)
def delete_document(document_id: str, tenant: ExistingTenant, knowledge: Knowledge, ingestion: Ingestion) -> Deleted:
    if not knowledge.index.delete_document(tenant.tenant_id, document_id):
        raise NotFound(f"document {document_id!r} is not in the knowledge base")
    report = ingestion.recalibrate(tenant)
    return Deleted(
        document_id=document_id,
        deleted=True,
        knowledge_version=knowledge.index.version(tenant.tenant_id),
        threshold=report.threshold if report else tenant.config.retrieval.min_answer_score,
    )
