"""The one boto3 client builder: every AWS client kefu makes (queues, Lambda, @connections, Secrets
Manager, Bedrock, SageMaker) comes from here, with explicit timeouts and retries.

boto3 is imported only when a client is built, so code that never reaches AWS never pays for it.
"""

from __future__ import annotations

from typing import Any


def aws_client(
    service: str,
    *,
    region: str,
    endpoint_url: str | None = None,
    connect_timeout: float = 2,
    read_timeout: float = 30,
    attempts: int = 4,
    validate: bool = True,
    keepalive: bool = False,
    path_style: bool = False,
) -> Any:
    """A boto3 client. ``attempts`` counts the first try (1: no retries of its own, for callers that
    retry and fall back themselves). ``validate=False`` skips botocore's per-call parameter check where
    this code builds every parameter (as PynamoDB does for DynamoDB): it is paid on every call.
    ``path_style``: S3 buckets addressed by path (what a custom endpoint such as moto or MinIO serves)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        service,
        region_name=region,
        endpoint_url=endpoint_url,
        config=Config(
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            retries={"total_max_attempts": attempts, "mode": "standard"},
            parameter_validation=validate,
            tcp_keepalive=keepalive,
            s3={"addressing_style": "path" if path_style else "auto"},
            # S3: SigV4 for presigned URLs and POSTs too (regions opened since 2014 refuse SigV2).
            signature_version="s3v4" if service == "s3" else None,
        ),
    )
