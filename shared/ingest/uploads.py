"""Uploads of any size: the admin API hands out a presigned S3 POST, the file goes straight to the
uploads bucket (not through API Gateway and Lambda, which cap a request at ~6 MB and 30 s), and the
bucket's ObjectCreated event runs the ingest function, which parses and indexes it asynchronously.

Each upload has a record in the ledger (shared/state/uploads.py) whose status the admin API returns:
pending → parsing → embedding → indexed, or failed with a reason. Objects are written under
``uploads/<tenant>/<upload id>/<file name>``; the presigned POST allows exactly that key (and at most
the declared size), so a tenant can write nowhere else, and the ingest function only ingests an object
whose key is the one its record names.

Exactly once: an event claims the record by compare-and-set (pending → parsing), so a redelivered
event finds it claimed and does nothing. Nothing is half-stored: the file is parsed completely before
the index is written once (one new knowledge version); a file that cannot be used is reported failed
and never reaches the index. The raw object is deleted once the upload is indexed or failed (a bucket
lifecycle rule removes any left behind).
"""

from __future__ import annotations

import posixpath
import re
import secrets
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import unquote_plus

from pydantic import Field

from shared.config_section import CamelModel
from shared.errors import NotFound, UpstreamError
from shared.ingest.errors import FileRejected, empty, too_large, unsupported
from shared.ingest.files import _LEGACY, EXTENSIONS, SUPPORTED_EXTENSIONS
from shared.ingest.service import FileError, FileMetadata, KnowledgeIngestion
from shared.observability import logger
from shared.state.store import StateStore
from shared.state.uploads import IN_PROGRESS, TERMINAL, UploadLedger, UploadRecord, UploadStatus

UPLOADS_PREFIX = "uploads/"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_MIME = re.compile(r"^[A-Za-z0-9][\w.+-]*/[\w.+-]+$")
_GENERIC_TYPES = frozenset({"application/octet-stream", "binary/octet-stream"})
_TEXT_TYPES = frozenset({"text/plain"})
# What browsers and tools send for each format (besides application/octet-stream, and text/plain for
# the text formats). A type naming another format is refused: the file is probably not what its name says.
CONTENT_TYPES: dict[str, frozenset[str]] = {
    "pdf": frozenset({"application/pdf", "application/x-pdf"}),
    "docx": frozenset({"application/vnd.openxmlformats-officedocument.wordprocessingml.document"}),
    "xlsx": frozenset(
        {
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            "application/vnd.ms-excel.sheet.macroenabled.12",
        }
    ),
    "csv": frozenset(
        {"text/csv", "application/csv", "text/tab-separated-values", "application/vnd.ms-excel", *_TEXT_TYPES}
    ),
    "json": frozenset({"application/json", "text/json", *_TEXT_TYPES}),
    "markdown": frozenset({"text/markdown", "text/x-markdown", *_TEXT_TYPES}),
    "html": frozenset({"text/html", "application/xhtml+xml", *_TEXT_TYPES}),
    "text": frozenset(_TEXT_TYPES),
}


class UploadRequest(CamelModel):
    filename: str = Field(min_length=1, max_length=255, description="the file's name (no folders)")
    content_type: str = Field(default="application/octet-stream", max_length=255)
    size: int = Field(ge=0, description="bytes; S3 refuses a larger object for this upload")
    document_id: str | None = Field(default=None, max_length=256)
    title: str | None = Field(default=None, max_length=512)
    url: str | None = Field(default=None, max_length=2048)


class UploadTicket(CamelModel):
    """Where to send the file: a multipart/form-data POST to ``url`` with ``fields`` first, then the
    file as the ``file`` field (the order S3 requires)."""

    upload_id: str
    method: Literal["POST"] = "POST"
    url: str
    fields: dict[str, str]
    key: str
    max_bytes: int
    expires_at: datetime


class UploadView(CamelModel):
    upload_id: str
    filename: str
    size: int
    status: UploadStatus
    document_id: str | None = None
    title: str | None = None
    chunks: int | None = None
    knowledge_version: str | None = None
    error: FileError | None = None
    attempts: int
    created_at: datetime
    updated_at: datetime


class UploadBucket(ABC):
    """The raw uploads (an S3 bucket; a dictionary in unit tests)."""

    @abstractmethod
    def presign_post(
        self, key: str, content_type: str, max_bytes: int, expires_seconds: int
    ) -> tuple[str, dict[str, str]]:
        """(url, form fields) of a POST that may write ``key`` only, at most ``max_bytes``."""

    @abstractmethod
    def read(self, key: str, max_bytes: int) -> bytes | None:
        """The object (None: gone); at most ``max_bytes + 1`` bytes are read."""

    @abstractmethod
    def delete(self, key: str) -> None: ...


@dataclass(frozen=True)
class UploadPolicy:
    max_bytes: int
    url_seconds: int  # how long a presigned POST stays valid
    # How long one ingestion attempt may run (the ingest function's timeout): a record in progress for
    # longer was left by a killed attempt, and is reported failed.
    attempt_seconds: float
    max_attempts: int = 3  # an attempt that fails unexpectedly is retried (Lambda's async retries)
    record_days: int = 14


def new_upload_id() -> str:
    return "up_" + secrets.token_hex(12)


def _format_of(filename: str) -> str:
    extension = posixpath.splitext(filename.lower())[1]
    if extension in _LEGACY:
        better = _LEGACY[extension]
        hint = f"save it as {better}" if better else "export it as PDF"
        raise unsupported(f"{extension} files are not supported; {hint}")
    if not extension:
        return "text"  # sniffed from the content when parsed, as for a direct upload
    if extension not in EXTENSIONS:
        raise unsupported(f"unsupported file type {extension!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}")
    return EXTENSIONS[extension]


def check_request(request: UploadRequest, max_bytes: int) -> str:
    """The content type to sign for, or FileRejected saying what is wrong with the declared file."""
    name = request.filename
    if "/" in name or "\\" in name or _CONTROL.search(name) or name.strip() in ("", ".", ".."):
        raise FileRejected("filename must be a file's name, without folders or control characters", 400, "bad_filename")
    if len(name.encode()) > 255:
        raise FileRejected("filename is longer than 255 bytes", 400, "bad_filename")
    kind = _format_of(name)
    if request.size == 0:
        raise empty()
    if request.size > max_bytes:
        raise too_large(request.size, max_bytes)
    content_type = request.content_type.split(";")[0].strip().lower() or "application/octet-stream"
    if not _MIME.match(content_type):
        raise FileRejected(f"contentType {content_type!r} is not a media type (type/subtype)", 400, "bad_content_type")
    extension = posixpath.splitext(name.lower())[1]
    if content_type not in _GENERIC_TYPES and content_type not in CONTENT_TYPES.get(kind, _TEXT_TYPES):
        expected = ", ".join(sorted(CONTENT_TYPES.get(kind, _TEXT_TYPES) | _GENERIC_TYPES))
        what = extension or "text"
        raise unsupported(f"contentType {content_type} does not fit a {what} file (expected one of {expected})")
    return content_type


def _parse_key(key: str) -> tuple[str, str] | None:
    """(tenant, upload id) of an object key ``uploads/<tenant>/<upload id>/<file name>``."""
    if not key.startswith(UPLOADS_PREFIX):
        return None
    parts = key[len(UPLOADS_PREFIX) :].split("/", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return parts[0], parts[1]


Outcome = Literal["indexed", "failed", "duplicate", "retry", "unknown_object"]


class Uploads:
    def __init__(
        self,
        ledger: UploadLedger,
        bucket: UploadBucket,
        store: StateStore,
        policy: UploadPolicy,
        ingestion: Callable[[], KnowledgeIngestion],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ledger = ledger
        self.bucket = bucket
        self.store = store
        self.policy = policy
        # Built on first use: the admin API hands out URLs without loading the embedder.
        self._ingestion = ingestion
        self._clock = clock

    @property
    def _ttl(self) -> float:
        return self.policy.record_days * 86400

    # --- the admin API ---

    def start(self, tenant_id: str, request: UploadRequest) -> UploadTicket:
        content_type = check_request(request, self.policy.max_bytes)
        upload_id = new_upload_id()
        key = f"{UPLOADS_PREFIX}{tenant_id}/{upload_id}/{request.filename}"
        now = self._clock()
        url, fields = self.bucket.presign_post(key, content_type, request.size, self.policy.url_seconds)
        record = UploadRecord(
            tenant_id=tenant_id,
            upload_id=upload_id,
            filename=request.filename,
            content_type=content_type,
            size=request.size,
            key=key,
            created_at=now,
            updated_at=now,
            url_expires_at=now + self.policy.url_seconds,
            document_id=request.document_id,
            title=request.title,
            url=request.url,
        )
        self.ledger.create(record, self._ttl)
        return UploadTicket(
            upload_id=upload_id,
            url=url,
            fields=fields,
            key=key,
            max_bytes=request.size,
            expires_at=datetime.fromtimestamp(record.url_expires_at, tz=UTC),
        )

    def view(self, tenant_id: str, upload_id: str) -> UploadView:
        record = self.ledger.get(tenant_id, upload_id) if len(upload_id) <= 64 else None
        if record is None:
            raise NotFound(f"no upload {upload_id!r} for this tenant")
        error = FileError(code=record.error_code, message=record.error_message or "") if record.error_code else None
        status = record.status
        now = self._clock()
        if status in IN_PROGRESS and now - (record.claimed_at or 0) > self.policy.attempt_seconds:
            status = "failed"
            error = FileError(
                code="ingestion_stopped",
                message="ingestion stopped before it finished (the function timed out or crashed); upload the file "
                "again",
            )
        elif status == "pending" and now > record.url_expires_at + 3600:
            status = "failed"
            error = FileError(code="never_uploaded", message="no file arrived before the upload URL expired")
        return UploadView(
            upload_id=record.upload_id,
            filename=record.filename,
            size=record.size,
            status=status,
            document_id=record.document_id if record.status == "indexed" else None,
            title=record.title if record.status == "indexed" else None,
            chunks=record.chunks,
            knowledge_version=record.knowledge_version,
            error=error,
            attempts=record.attempts,
            created_at=datetime.fromtimestamp(record.created_at, tz=UTC),
            updated_at=datetime.fromtimestamp(record.updated_at, tz=UTC),
        )

    # --- the ingest function ---

    def ingest_objects(self, raw_keys: list[str]) -> list[Outcome]:
        """Every object of one S3 event; IngestRetry when an attempt failed unexpectedly (its upload is
        pending again), so that the event is delivered again."""
        outcomes = [self.ingest_object(key) for key in raw_keys]
        if "retry" in outcomes:
            raise IngestRetry("an upload's ingestion failed unexpectedly; it is retried with the event")
        return outcomes

    def ingest_object(self, raw_key: str) -> Outcome:
        """Ingest the object an ObjectCreated event names (its key as S3 sends it: URL-encoded)."""
        key = unquote_plus(raw_key)
        found = _parse_key(key)
        record = self.ledger.get(*found) if found else None
        if record is None or record.key != key:
            # Not written through a presigned upload of this deployment: never ingested.
            logger.warning("object without an upload record", extra={"key": key[:300]})
            self.bucket.delete(key)
            return "unknown_object"
        logger.append_keys(tenant_id=record.tenant_id, upload_id=record.upload_id)
        claimed = self._claim(record)
        if claimed is None:
            logger.info("upload already claimed", extra={"status": record.status})
            if record.status in TERMINAL:
                # The URL was used again after its upload finished: that copy is never ingested.
                self.bucket.delete(record.key)
            return "duplicate"
        try:
            return self._ingest(claimed)
        except Exception as error:
            return self._after_error(claimed, error)

    def _claim(self, record: UploadRecord) -> UploadRecord | None:
        now = self._clock()
        stale = record.status in IN_PROGRESS and now - (record.claimed_at or 0) > self.policy.attempt_seconds
        if record.status != "pending" and not stale:
            return None
        claim = record.model_copy(update={"status": "parsing", "claimed_at": now, "attempts": record.attempts + 1})
        return self.ledger.replace(claim, self._ttl)

    def _move(self, record: UploadRecord, **changes: object) -> UploadRecord:
        moved = self.ledger.replace(record.model_copy(update=changes), self._ttl)
        if moved is None:  # only a stale-claim takeover moves a claimed record: that attempt owns it now
            raise _Superseded
        return moved

    def _ingest(self, record: UploadRecord) -> Outcome:
        tenant = self.store.get_tenant(record.tenant_id)
        if tenant is None:
            return self._fail(record, FileRejected("the tenant no longer exists", 404, "unknown_tenant"))
        data = self.bucket.read(record.key, self.policy.max_bytes)
        if data is None:
            return self._fail(record, FileRejected("the uploaded object is gone", 410, "object_gone"))
        if len(data) > record.size:
            return self._fail(record, too_large(len(data), record.size))
        ingestion = self._ingestion()
        metadata = FileMetadata(document_id=record.document_id, title=record.title, url=record.url)
        try:
            document = ingestion.parse(record.filename, data, metadata)
        except FileRejected as error:
            return self._fail(record, error)
        record = self._move(record, status="embedding", document_id=document.id, title=document.title)
        indexed = ingestion.index_documents(tenant, [document])
        self._move(
            record,
            status="indexed",
            chunks=indexed.chunks_by_document.get(document.id, indexed.chunks),
            knowledge_version=indexed.knowledge_version,
        )
        self.bucket.delete(record.key)
        logger.info("upload indexed", extra={"chunks": indexed.chunks, "bytes": len(data)})
        return "indexed"

    def _fail(self, record: UploadRecord, error: FileRejected) -> Outcome:
        self._move(record, status="failed", error_code=error.code, error_message=error.message)
        self.bucket.delete(record.key)
        logger.info("upload refused", extra={"code": error.code, "reason": error.message})
        return "failed"

    def _after_error(self, record: UploadRecord, error: Exception) -> Outcome:
        """An unexpected error (AWS, the embedder): back to pending for the event's retry, or failed after
        the last attempt. The index was written at most once (the write is the last step that can fail
        before ``indexed``, and it is atomic)."""
        if isinstance(error, _Superseded):
            return "duplicate"
        logger.exception("upload ingestion failed")
        current = self.ledger.get(record.tenant_id, record.upload_id)
        if current is None or current.claimed_at != record.claimed_at or current.status in TERMINAL:
            return "duplicate"  # another attempt owns it now
        if current.attempts >= self.policy.max_attempts:
            message = f"ingestion failed {current.attempts} times; upload the file again"
            reason = FileRejected(message, 503, "ingest_error")
            return self._fail(current, reason)
        self.ledger.replace(current.model_copy(update={"status": "pending", "claimed_at": None}), self._ttl)
        return "retry"


class IngestRetry(UpstreamError):
    code = "ingest_retry"


class _Superseded(Exception):
    """Another attempt took the record over (this one had run past its time)."""
