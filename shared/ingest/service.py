"""Files and documents into a tenant's knowledge: the use case behind the admin API's ingestion routes
and the ingest function (presigned uploads, shared/ingest/uploads.py).

Every file is parsed (bounded: shared/ingest/limits.py) before anything is written; the parsed
documents then go to the index in one write (one new knowledge version), and the tenant's "no good
answer" threshold is recalibrated from the knowledge as it now is. A file that cannot be used gets
its own 4xx outcome and is not stored at all.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import BinaryIO

from shared.config_section import CamelModel
from shared.errors import BadRequest
from shared.ingest.errors import FileRejected
from shared.ingest.files import parse_file
from shared.ingest.limits import ParseLimits
from shared.knowledge.base import Document
from shared.knowledge.calibration import CalibrationReport, CalibrationRequest, calibrate
from shared.knowledge.search import KnowledgeService
from shared.settings import Settings
from shared.state.records import Tenant
from shared.state.store import StateStore

# A file is not started with less time than this left in the request's parsing budget.
MIN_PARSE_SECONDS = 0.5


@dataclass(frozen=True)
class IngestLimits:
    max_bytes: int  # per file
    max_files: int  # per request
    request_seconds: float  # parsing, all the files of one request together
    parse: ParseLimits

    @classmethod
    def from_settings(cls, settings: Settings, *, parse_seconds: float | None = None) -> IngestLimits:
        """``parse_seconds``: one file's budget where it differs from a request's (the ingest function
        parses one file with a longer one)."""
        return cls(
            max_bytes=settings.max_upload_bytes,
            max_files=settings.max_upload_files,
            request_seconds=parse_seconds or settings.ingest_request_seconds,
            parse=ParseLimits(
                max_zip_entries=settings.ingest_max_zip_entries,
                max_unpacked_bytes=settings.ingest_max_unpacked_bytes,
                max_compression_ratio=settings.ingest_max_compression_ratio,
                seconds=parse_seconds or settings.ingest_parse_seconds,
                memory_bytes=settings.ingest_parse_memory_mb * 1024 * 1024,
                isolated=settings.ingest_isolated,
            ),
        )


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

    @property
    def status(self) -> int:
        """200 when every file was indexed, 207 when some were, else the first file's status."""
        failed = [result for result in self.files if result.status != 200]
        return 200 if not failed else (207 if self.indexed else failed[0].status)


@dataclass(frozen=True)
class DocumentsIndexed:
    documents: int
    chunks: int
    chunks_by_document: dict[str, int]
    knowledge_version: str
    threshold: float | None
    calibration: CalibrationReport | None


@dataclass(frozen=True)
class FileMetadata:
    """What the uploader may set for a single file (else: id from its name, title from its content)."""

    document_id: str | None = None
    title: str | None = None
    url: str | None = None

    @property
    def given(self) -> bool:
        return bool(self.document_id or self.title or self.url)


class KnowledgeIngestion:
    def __init__(
        self,
        store: StateStore,
        knowledge: KnowledgeService,
        limits: IngestLimits,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.knowledge = knowledge
        self.limits = limits
        self._clock = clock

    def parse(self, name: str, data: bytes, metadata: FileMetadata, seconds: float | None = None) -> Document:
        """One file as a Document, or FileRejected saying why not (nothing is stored either way)."""
        limits = self.limits.parse if seconds is None else replace(self.limits.parse, seconds=seconds)
        return parse_file(
            name,
            data,
            max_bytes=self.limits.max_bytes,
            document_id=metadata.document_id,
            title=metadata.title,
            url=metadata.url,
            limits=limits,
        )

    def index_documents(self, tenant: Tenant, documents: list[Document]) -> DocumentsIndexed:
        """One write (a new knowledge version), then the tenant's threshold recalibrated."""
        result = self.knowledge.index.index(tenant.tenant_id, documents)
        report = self.recalibrate(tenant)
        return DocumentsIndexed(
            documents=result.documents,
            chunks=result.chunks,
            chunks_by_document=dict(result.chunks_by_document),
            knowledge_version=result.version,
            threshold=report.threshold if report else tenant.config.retrieval.min_answer_score,
            calibration=report,
        )

    def ingest_files(
        self, tenant: Tenant, files: Sequence[tuple[str, BinaryIO]], metadata: FileMetadata = FileMetadata()
    ) -> FilesIndexed:
        """Several files of one request: each parsed within what is left of the request's budget, the
        usable ones indexed together; each file's own outcome in ``files``."""
        if len(files) > self.limits.max_files:
            raise BadRequest(f"at most {self.limits.max_files} files per request; got {len(files)}")
        if len(files) > 1 and metadata.given:
            raise BadRequest("documentId, title and url apply to a single file; upload one file per request")
        results: list[FileResult] = []
        documents: dict[str, Document] = {}
        deadline = self._clock() + self.limits.request_seconds
        for name, stream in files:
            remaining = deadline - self._clock()
            if remaining < MIN_PARSE_SECONDS:
                budget = FileError(
                    code="parse_time_exhausted",
                    message=f"not read: this request used its {self.limits.request_seconds:g} s of parsing; "
                    "upload this file again",
                )
                results.append(FileResult(filename=name, status=503, error=budget))
                continue
            try:
                data = stream.read(self.limits.max_bytes + 1)
                document = self.parse(name, data, metadata, min(self.limits.parse.seconds, remaining))
            except FileRejected as error:
                refusal = FileError(code=error.code, message=error.message)
                results.append(FileResult(filename=name, status=error.status, error=refusal))
                continue
            if document.id in documents:
                message = f"another file in this request is {document.id!r}"
                duplicate = FileError(code="duplicate_document", message=message)
                results.append(FileResult(filename=name, status=409, error=duplicate))
                continue
            documents[document.id] = document
            results.append(FileResult(filename=name, status=200, document_id=document.id, title=document.title))
        if not documents:
            version = self.knowledge.index.version(tenant.tenant_id)
            threshold = tenant.config.retrieval.min_answer_score
            return FilesIndexed(
                files=results, indexed=0, failed=len(results), chunks=0, knowledge_version=version, threshold=threshold
            )
        indexed = self.index_documents(tenant, list(documents.values()))
        for result in results:
            if result.document_id is not None:
                result.chunks = indexed.chunks_by_document.get(result.document_id, 0)
        return FilesIndexed(
            files=results,
            indexed=len(documents),
            failed=sum(1 for result in results if result.status != 200),
            chunks=sum(result.chunks or 0 for result in results),
            knowledge_version=indexed.knowledge_version,
            threshold=indexed.threshold,
            calibration=indexed.calibration,
        )

    def recalibrate(self, tenant: Tenant) -> CalibrationReport | None:
        """Set the tenant's threshold from its knowledge as it now is (calibration.py), unless the tenant
        switched automatic calibration off."""
        retrieval = tenant.config.retrieval
        if not retrieval.auto_calibrate:
            return None
        report, updated = calibrate(self.knowledge, tenant.tenant_id, retrieval, CalibrationRequest())
        # Re-read: another request may have changed other settings of the tenant meanwhile.
        current = self.store.get_tenant(tenant.tenant_id) or tenant
        if not current.config.retrieval.auto_calibrate:
            return None
        retrieval = current.config.retrieval.model_copy(
            update={
                key: getattr(updated, key)
                for key in ("min_answer_score", "calibrated_at", "calibration_decline_rate", "target_decline")
            }
        )
        config = current.config.model_copy(update={"retrieval": retrieval})
        self.store.put_tenant(current.model_copy(update={"config": config}))
        return report
