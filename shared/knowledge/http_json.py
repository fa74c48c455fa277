"""What the HTTP knowledge-model adapters share (the OpenAI-compatible embedder, the TEI/Cohere
reranker): one JSON POST with retries of transport errors and 429/5xx, and one way to fail."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from shared.errors import UpstreamError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
T = TypeVar("T")


def post_json(
    http: Any, url: str, body: dict[str, Any], *, read: Callable[[Any], T], what: str, retries: int
) -> T:
    """POST ``body`` to ``url`` and ``read`` the JSON answer. Transport errors and 429/5xx are retried
    ``retries`` times (0.2 s, then doubling); what still fails, or a body ``read`` cannot make sense of,
    is an UpstreamError naming ``what`` (e.g. "embedding server")."""
    import httpx

    for attempt in range(retries + 1):
        try:
            response = http.post(url, json=body)
        except httpx.HTTPError as error:
            if attempt < retries:
                time.sleep(0.2 * 2**attempt)
                continue
            raise UpstreamError(f"{what} {url} unreachable: {error}") from error
        if response.status_code in RETRY_STATUSES and attempt < retries:
            time.sleep(0.2 * 2**attempt)
            continue
        if response.status_code != 200:
            raise UpstreamError(f"{what} answered {response.status_code}: {response.text[:300]}")
        try:
            return read(response.json())
        except (ValueError, KeyError, TypeError) as error:
            raise UpstreamError(f"{what} sent an unexpected body: {response.text[:300]}") from error
    raise UpstreamError(f"{what} kept failing")  # pragma: no cover - the loop returns or raises
