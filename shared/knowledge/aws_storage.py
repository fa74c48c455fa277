"""The S3 index's ports on AWS: S3 objects and a DynamoDB version pointer (moto's server locally)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from shared.knowledge.s3_index import ObjectStore, Pointer, StoredObject, VersionPointer

if TYPE_CHECKING:
    from shared.settings import Settings


class S3ObjectStore(ObjectStore):
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def get(self, key: str) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        data: bytes = response["Body"].read()
        return data

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/zip")

    def delete(self, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": key} for key in keys[start : start + 1000]]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})

    def list(self, prefix: str) -> list[StoredObject]:
        found = []
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                found.append(StoredObject(item["Key"], item["LastModified"].timestamp()))
        return found


class DynamoVersionPointer(VersionPointer):
    """One item per index in the knowledge table (shared/state/tables.py KnowledgePointerModel)."""

    def read(self, index_key: str, *, consistent: bool = False) -> Pointer | None:
        from shared.state.tables import KnowledgePointerModel

        try:
            item = KnowledgePointerModel.get(index_key, consistent_read=consistent)
        except KnowledgePointerModel.DoesNotExist:
            return None
        return Pointer(item.version, item.previous)

    def swap(self, index_key: str, expected: str | None, new: str) -> bool:
        from pynamodb.exceptions import PutError

        from shared.state.tables import KnowledgePointerModel

        item = KnowledgePointerModel(index_key, version=new, previous=expected, updated_at=int(time.time()))
        condition = (
            KnowledgePointerModel.index_key.does_not_exist()
            if expected is None
            else KnowledgePointerModel.version == expected
        )
        try:
            item.save(condition=condition)
        except PutError as error:
            if error.cause_response_code == "ConditionalCheckFailedException":
                return False
            raise
        return True


def create_bucket(settings: Settings) -> None:
    """Create the knowledge bucket where missing (local emulation and tests; the CDK app owns it in AWS)."""
    from shared.aws_clients import aws_client

    client = aws_client("s3", region=settings.aws_region, endpoint_url=settings.s3_endpoint)
    try:
        client.head_bucket(Bucket=settings.knowledge_bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=settings.knowledge_bucket)
