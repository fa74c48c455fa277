"""The uploads bucket on S3 (moto's server locally): presigned POSTs, reading and removing raw uploads."""

from __future__ import annotations

from typing import Any

from shared.ingest.uploads import UploadBucket


class S3UploadBucket(UploadBucket):
    def __init__(self, client: Any, bucket: str) -> None:
        self.client = client
        self.bucket = bucket

    def presign_post(
        self, key: str, content_type: str, max_bytes: int, expires_seconds: int
    ) -> tuple[str, dict[str, str]]:
        # boto3 adds the bucket and the exact key to the policy's conditions; S3 itself then refuses
        # any other key, another content type, or a body larger than the declared size.
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires_seconds,
        )
        return str(post["url"]), {name: str(value) for name, value in post["fields"].items()}

    def read(self, key: str, max_bytes: int) -> bytes | None:
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=key)
        except self.client.exceptions.NoSuchKey:
            return None
        data: bytes = response["Body"].read(max_bytes + 1)
        response["Body"].close()
        return data

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def create_uploads_bucket(client: Any, bucket: str) -> None:
    """The uploads bucket where missing (the local emulation and tests; the CDK app owns it in AWS)."""
    try:
        client.head_bucket(Bucket=bucket)
    except client.exceptions.ClientError:
        client.create_bucket(Bucket=bucket)
