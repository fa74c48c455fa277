"""The uploads ledger: one record per presigned upload, with its ingestion status.

pending (URL handed out, object not yet seen) → parsing → embedding → indexed, or failed with a reason.
A record moves only by compare-and-set on its ``revision``, so two deliveries of one S3 event cannot
both claim it (shared/ingest/uploads.py). In DynamoDB the records are items ``upload#<tenant>#<id>``
of the limits table (beside the rate counters and channel state), expiring with its TTL.
"""

from __future__ import annotations

import json
import time
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Literal

from pydantic import BaseModel
from pynamodb.exceptions import PutError

from shared.state.tables import UploadModel, bind_upload_model

UploadStatus = Literal["pending", "parsing", "embedding", "indexed", "failed"]
IN_PROGRESS: frozenset[str] = frozenset({"parsing", "embedding"})
TERMINAL: frozenset[str] = frozenset({"indexed", "failed"})


class UploadRecord(BaseModel):
    tenant_id: str
    upload_id: str
    filename: str
    content_type: str
    size: int  # as declared when the URL was handed out (the largest object S3 accepts for it)
    key: str  # the only object key the presigned POST may write
    status: UploadStatus = "pending"
    created_at: float
    updated_at: float
    url_expires_at: float
    # When the current attempt claimed it (in progress), and how many attempts claimed it so far.
    claimed_at: float | None = None
    attempts: int = 0
    # As requested (document id, title, source URL), then as indexed.
    document_id: str | None = None
    title: str | None = None
    url: str | None = None
    chunks: int | None = None
    knowledge_version: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    # Bumped on every write: the compare-and-set token.
    revision: int = 0


class UploadLedger(ABC):
    @abstractmethod
    def create(self, record: UploadRecord, ttl_seconds: float) -> None:
        """Store a new record (its upload id is fresh: an existing one is an error)."""

    @abstractmethod
    def get(self, tenant_id: str, upload_id: str) -> UploadRecord | None: ...

    @abstractmethod
    def replace(self, record: UploadRecord, ttl_seconds: float) -> UploadRecord | None:
        """Write ``record`` (revision + 1) if the stored one still has ``record.revision``; None when
        another writer moved it first."""


def upload_key(tenant_id: str, upload_id: str) -> str:
    return f"upload#{tenant_id}#{upload_id}"


class DynamoUploadLedger(UploadLedger):
    def __init__(self, table_name: str, endpoint: str | None, region: str) -> None:
        bind_upload_model(table_name, endpoint, region)

    def create(self, record: UploadRecord, ttl_seconds: float) -> None:
        self._item(record, ttl_seconds).save(condition=UploadModel.counter_key.does_not_exist())

    def get(self, tenant_id: str, upload_id: str) -> UploadRecord | None:
        try:
            item = UploadModel.get(upload_key(tenant_id, upload_id), consistent_read=True)
        except UploadModel.DoesNotExist:
            return None
        return UploadRecord.model_validate(json.loads(item.payload))

    def replace(self, record: UploadRecord, ttl_seconds: float) -> UploadRecord | None:
        moved = record.model_copy(update={"revision": record.revision + 1, "updated_at": time.time()})
        try:
            self._item(moved, ttl_seconds).save(condition=UploadModel.revision == record.revision)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return None
            raise
        return moved

    @staticmethod
    def _item(record: UploadRecord, ttl_seconds: float) -> UploadModel:
        return UploadModel(
            upload_key(record.tenant_id, record.upload_id),
            payload=record.model_dump_json(),
            revision=record.revision,
            expires_at=datetime.fromtimestamp(int(time.time() + ttl_seconds), tz=UTC),
        )
