"""The ``context`` argument of a Lambda handler, with the attributes the Python runtime provides."""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any


@dataclass(frozen=True)
class CognitoIdentity:
    cognito_identity_id: str | None = None
    cognito_identity_pool_id: str | None = None


@dataclass(frozen=True)
class ClientContext:
    """``X-Amz-Client-Context`` of an Invoke call (base64 JSON with client/custom/env)."""

    client: dict[str, Any] | None = None
    custom: dict[str, Any] | None = None
    env: dict[str, Any] | None = None


@dataclass
class LambdaContext:
    function_name: str
    function_version: str
    invoked_function_arn: str
    # A string in the real runtime (it is read from AWS_LAMBDA_FUNCTION_MEMORY_SIZE).
    memory_limit_in_mb: str
    aws_request_id: str
    log_group_name: str
    log_stream_name: str
    identity: CognitoIdentity = field(default_factory=CognitoIdentity)
    client_context: ClientContext | None = None
    tenant_id: str | None = None
    deadline_monotonic: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline_monotonic - time.monotonic()) * 1000))


def function_arn(function_name: str, *, region: str, account_id: str) -> str:
    return f"arn:aws:lambda:{region}:{account_id}:function:{function_name}"


def make_context(
    function_name: str,
    *,
    region: str = "us-east-1",
    account_id: str = "000000000000",
    memory_mb: int = 128,
    timeout_seconds: float = 30.0,
    request_id: str | None = None,
    client_context: ClientContext | None = None,
    tenant_id: str | None = None,
) -> LambdaContext:
    """A context whose remaining time counts down from ``timeout_seconds`` starting now."""
    today = datetime.now(tz=UTC).strftime("%Y/%m/%d")
    return LambdaContext(
        function_name=function_name,
        function_version="$LATEST",
        invoked_function_arn=function_arn(function_name, region=region, account_id=account_id),
        memory_limit_in_mb=str(memory_mb),
        aws_request_id=request_id or str(uuid.uuid4()),
        log_group_name=f"/aws/lambda/{function_name}",
        log_stream_name=f"{today}/[$LATEST]{secrets.token_hex(16)}",
        client_context=client_context,
        tenant_id=tenant_id,
        deadline_monotonic=time.monotonic() + timeout_seconds,
    )
