"""Typed domain errors. Handlers map them to responses in one place each."""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class KefuError(Exception):
    """Base class: ``code`` is machine-readable and goes on the wire; the message is for humans."""

    code = "internal_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(KefuError):
    code = "bad_request"


class MessageTooLarge(BadRequest):
    code = "message_too_large"


class UnknownAction(BadRequest):
    code = "unknown_action"


class Unauthorized(KefuError):
    code = "unauthorized"


class Forbidden(KefuError):
    code = "forbidden"


class NotFound(KefuError):
    code = "not_found"


class Conflict(KefuError):
    code = "conflict"


class ConnectionGone(KefuError):
    """The visitor's WebSocket connection no longer exists (API Gateway GoneException)."""

    code = "connection_gone"


class UpstreamError(KefuError):
    """A dependency (model server, retrieval, AWS API) failed."""

    code = "upstream_error"


class Throttled(KefuError):
    """Too much, too fast, or a quota spent (rate_limits.py, quotas.py): HTTP 429."""

    code = "rate_limited"


_HTTP_STATUS: dict[type[KefuError], int] = {
    BadRequest: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    UpstreamError: 502,
    Throttled: 429,
}


def http_status(exc: KefuError) -> int:
    """The HTTP status a typed error maps to (its own ``status`` when it has one, e.g. a refused file's
    413 or 415; else the most specific class wins)."""
    status = getattr(exc, "status", None)
    if isinstance(status, int) and 400 <= status < 600:
        return status
    for cls in type(exc).__mro__:
        if cls in _HTTP_STATUS:
            return _HTTP_STATUS[cls]
    return 500


def describe_validation_error(
    error: ValidationError, *, whole: str | None = "request", most: int | None = None, hide: Collection[str] = ()
) -> str:
    """One line naming each bad field and why, never echoing the input back: ``whole`` names a problem
    with no field (None: the message alone), ``most`` keeps the first problems only, and leading
    location parts in ``hide`` (a tagged union's tag, which says nothing to the sender) are dropped."""
    problems = []
    for item in error.errors(include_input=False, include_url=False)[:most]:
        loc = [str(part) for part in item["loc"]]
        if loc and loc[0] in hide:
            loc = loc[1:]
        message = str(item["msg"]).removeprefix("Value error, ")
        where = ".".join(loc) or whole
        problems.append(f"{where}: {message}" if where else message)
    return "; ".join(problems)
