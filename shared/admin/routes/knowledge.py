"""A tenant's knowledge base: ingest (JSON documents or uploaded files), search (the recall test: the
bot's own retrieval path), calibrate the "no good answer" threshold, delete, version."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Form, Query, UploadFile
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shared.admin.deps import ExistingTenant, Store
from shared.config_section import CamelModel
from shared.errors import BadRequest, NotFound
from shared.knowledge.base import Document, DocumentSummary
from shared.knowledge.calibration import CalibrationReport, CalibrationRequest, calibrate
from shared.knowledge.search import KnowledgeService
from shared.settings import get_settings
from shared.state.records import Tenant
from shared.state.store import StateStore

router = APIRouter(prefix="/v1/tenants/{tenant_id}/knowledge", tags=["knowledge"])
# A file is not started with less time than this left in the request's parsing budget.
_MIN_PARSE_SECONDS = 0.5


def _knowledge() -> KnowledgeService:
    from shared.wiring import knowledge_service

    return knowledge_service()


Knowledge = Annotated[KnowledgeService, Depends(_knowledge)]


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


class FileError(CamelModel):
    code: str
    message: str


class FileResult(CamelModel):
    filename: str
    status: int  # 200, or the 4xx this file alone would have got
    document_id: str | None = None
    title: str | None = None
    chunks: int | None = None
    error: FileError | None = None


class FilesIndexed(CamelModel):
    files: list[FileResult]
    indexed: int
    failed: int
    chunks: int
    knowledge_version: str
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


def _recalibrate(store: StateStore, tenant: Tenant, knowledge: KnowledgeService) -> CalibrationReport | None:
    """Set the tenant's threshold from its knowledge as it now is (calibration.py), unless the tenant
    calibrated with its own examples (then it recalibrates by calling calibrate again)."""
    retrieval = tenant.config.retrieval
    if not retrieval.auto_calibrate:
        return None
    report, updated = calibrate(knowledge, tenant.tenant_id, retrieval, CalibrationRequest())
    # Re-read: another request may have changed other settings of the tenant meanwhile.
    current = store.get_tenant(tenant.tenant_id) or tenant
    if not current.config.retrieval.auto_calibrate:
        return None
    retrieval = current.config.retrieval.model_copy(
        update={
            key: getattr(updated, key)
            for key in ("min_answer_score", "calibrated_at", "calibration_decline_rate", "target_decline")
        }
    )
    store.put_tenant(current.model_copy(update={"config": current.config.model_copy(update={"retrieval": retrieval})}))
    return report


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
def ingest(body: IngestDocuments, tenant: ExistingTenant, store: Store, knowledge: Knowledge) -> Indexed:
    """Add or replace documents (a document id indexed again replaces its passages). A document is
    ``text`` or structured ``blocks`` (``qa`` pairs, ``table``s, ``text`` under a ``section``). The
    tenant's threshold is then recalibrated from the new knowledge (``calibration``)."""
    result = knowledge.index.index(tenant.tenant_id, body.documents)
    report = _recalibrate(store, tenant, knowledge)
    return Indexed(
        documents=result.documents,
        chunks=result.chunks,
        knowledge_version=result.version,
        threshold=report.threshold if report else tenant.config.retrieval.min_answer_score,
        calibration=report,
    )


@router.post(
    "/files",
    response_model=FilesIndexed,
    response_model_by_alias=True,
    responses={207: {"model": FilesIndexed, "description": "some files were refused (see files[].error)"}},
)
def ingest_files(
    tenant: ExistingTenant,
    store: Store,
    knowledge: Knowledge,
    files: Annotated[list[UploadFile], File(description="PDF, DOCX, XLSX, CSV, JSON (FAQ), Markdown, HTML, text")],
    document_id: Annotated[str | None, Form(alias="documentId", max_length=256)] = None,
    title: Annotated[str | None, Form(max_length=512)] = None,
    url: Annotated[str | None, Form(max_length=2048)] = None,
) -> Any:
    """Upload files; each becomes one document (id: its file name, or ``documentId`` for a single
    file), replacing an earlier upload of the same name. A file that cannot be used gets its own 4xx
    in ``files[]`` while the others are indexed: 200 when all were, 207 when some were, else the
    first file's status."""
    from shared.ingest import FileRejected, parse_file
    from shared.ingest.limits import ParseLimits

    settings = get_settings()
    limits = ParseLimits(
        max_zip_entries=settings.ingest_max_zip_entries,
        max_unpacked_bytes=settings.ingest_max_unpacked_bytes,
        max_compression_ratio=settings.ingest_max_compression_ratio,
        seconds=settings.ingest_parse_seconds,
        memory_bytes=settings.ingest_parse_memory_mb * 1024 * 1024,
        isolated=settings.ingest_isolated,
    )
    if len(files) > settings.max_upload_files:
        raise BadRequest(f"at most {settings.max_upload_files} files per request; got {len(files)}")
    if len(files) > 1 and (document_id or title or url):
        raise BadRequest("documentId, title and url apply to a single file; upload one file per request")
    results: list[FileResult] = []
    documents: dict[str, Document] = {}
    # One request parses for at most this long, whatever the files (API Gateway answers 504 at 30 s).
    deadline = time.monotonic() + settings.ingest_request_seconds
    for upload in files:
        name = upload.filename or ""
        remaining = deadline - time.monotonic()
        if remaining < _MIN_PARSE_SECONDS:
            budget = FileError(
                code="parse_time_exhausted",
                message=f"not read: this request used its {settings.ingest_request_seconds:g} s of parsing; "
                "upload this file again",
            )
            results.append(FileResult(filename=name, status=503, error=budget))
            continue
        data = upload.file.read(settings.max_upload_bytes + 1)
        try:
            document = parse_file(
                name,
                data,
                max_bytes=settings.max_upload_bytes,
                document_id=document_id,
                title=title,
                url=url,
                limits=replace(limits, seconds=min(limits.seconds, remaining)),
            )
        except FileRejected as error:
            results.append(
                FileResult(filename=name, status=error.status, error=FileError(code=error.code, message=error.message))
            )
            continue
        if document.id in documents:
            duplicate = FileError(code="duplicate_document", message=f"another file in this request is {document.id!r}")
            results.append(FileResult(filename=name, status=409, error=duplicate))
            continue
        documents[document.id] = document
        results.append(
            FileResult(
                filename=name,
                status=200,
                document_id=document.id,
                title=document.title,
            )
        )
    report = None
    if documents:
        indexed = knowledge.index.index(tenant.tenant_id, list(documents.values()))
        version = indexed.version
        for result in results:
            if result.document_id is not None:
                result.chunks = indexed.chunks_by_document.get(result.document_id, 0)
        report = _recalibrate(store, tenant, knowledge)
    else:
        version = knowledge.index.version(tenant.tenant_id)
    failed = [r for r in results if r.status != 200]
    body = FilesIndexed(
        files=results,
        indexed=len(documents),
        failed=len(failed),
        chunks=sum(r.chunks or 0 for r in results),
        knowledge_version=version,
        threshold=report.threshold if report else tenant.config.retrieval.min_answer_score,
        calibration=report,
    )
    status = 200 if not failed else (207 if documents else failed[0].status)
    return JSONResponse(status_code=status, content=body.model_dump(mode="json", by_alias=True))


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
def delete_document(document_id: str, tenant: ExistingTenant, store: Store, knowledge: Knowledge) -> Deleted:
    if not knowledge.index.delete_document(tenant.tenant_id, document_id):
        raise NotFound(f"document {document_id!r} is not in the knowledge base")
    report = _recalibrate(store, tenant, knowledge)
    return Deleted(
        document_id=document_id,
        deleted=True,
        knowledge_version=knowledge.index.version(tenant.tenant_id),
        threshold=report.threshold if report else tenant.config.retrieval.min_answer_score,
    )
