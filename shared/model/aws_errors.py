"""boto3 clients for the AWS model adapters, and their errors as ``ModelServerError``.

botocore and boto3 are imported by the functions that call AWS anyway; this module imports them only
when an AWS model is built.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shared.model.streaming_chat import MAX_ERROR_CHARS, ModelServerError


def model_client(
    service: str,
    *,
    region: str,
    endpoint_url: str | None,
    connect_timeout: float,
    read_timeout: float,
) -> Any:
    """A client with our timeouts and no retries of its own (the gateway retries and falls back)."""
    from shared.aws_clients import aws_client

    return aws_client(
        service,
        region=region,
        endpoint_url=endpoint_url,
        connect_timeout=connect_timeout,
        read_timeout=read_timeout,
        attempts=1,
        keepalive=True,
    )


@contextmanager
def aws_model_errors(what: str) -> Iterator[None]:
    """Client errors, stream error events, timeouts and dropped connections -> ModelServerError."""
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, ReadTimeoutError
    from urllib3.exceptions import HTTPError as Urllib3Error

    try:
        yield
    except ClientError as exc:  # includes EventStreamError: an exception event inside the stream
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        code = error.get("Code") or "error"
        message = str(error.get("Message") or exc)[:MAX_ERROR_CHARS]
        raise ModelServerError(
            f"{what} failed: {code}: {message}", status=status if isinstance(status, int) and status else None
        ) from exc
    except ReadTimeoutError as exc:
        raise ModelServerError(f"{what} timed out ({exc})") from exc
    except ConnectionError as exc:
        raise ModelServerError(f"{what} connection failed ({exc})") from exc
    except BotoCoreError as exc:
        raise ModelServerError(f"{what} failed: {exc}") from exc
    except Urllib3Error as exc:  # reading the event stream's body (botocore does not wrap these)
        raise ModelServerError(f"{what} stream broke off ({exc!r})") from exc
