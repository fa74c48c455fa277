"""Who a visitor is: a server-issued, signed visitor token, a tenant's signed identity of its logged-in
user, the alias agents see, and the widget's origin check (docs/security.md).

A visitor id chosen by the client proves nothing: anyone who learns it could read that visitor's
conversations. So the server issues the id and signs it (HMAC-SHA256 over tenant and visitor id with a
deployment secret); the widget stores the token and presents it on reconnect, and an id without a valid
token is replaced by a fresh one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import urlsplit

from shared.state.records import VERIFIED_USER_PREFIX

_TOKEN = re.compile(r"^vt1\.([A-Za-z0-9_-]{8,64})\.([A-Za-z0-9_-]{43})$")


def _b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class VisitorTokens:
    """Issues and checks visitor tokens ``vt1.<visitorId>.<signature>`` bound to one tenant."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the visitor-token secret must be at least 16 bytes")
        self._secret = secret

    def _signature(self, tenant_id: str, visitor_id: str) -> str:
        message = f"kefu-visitor-v1\n{tenant_id}\n{visitor_id}".encode()
        return _b64(hmac.new(self._secret, message, hashlib.sha256).digest())

    def issue(self, tenant_id: str, visitor_id: str) -> str:
        return f"vt1.{visitor_id}.{self._signature(tenant_id, visitor_id)}"

    def visitor_of(self, tenant_id: str, token: str) -> str | None:
        """The visitor id the token was issued for, if it is genuine and for this tenant."""
        match = _TOKEN.match(token or "")
        if match is None:
            return None
        visitor_id, signature = match[1], match[2]
        if not hmac.compare_digest(signature, self._signature(tenant_id, visitor_id)):
            return None
        return visitor_id


def user_hash(identity_secret: str, user_id: str) -> str:
    """What a tenant's server computes for its logged-in user (hex HMAC-SHA256 of the user id, as
    Intercom and Chatwoot do) and the page passes as ``userHash``."""
    return hmac.new(identity_secret.encode(), user_id.encode(), hashlib.sha256).hexdigest()


def user_verified(identity_secret: str | None, user_id: str, given_hash: str) -> bool:
    if not identity_secret or not user_id or not given_hash:
        return False
    return hmac.compare_digest(user_hash(identity_secret, user_id), given_hash.strip().lower())


def visitor_id_for_user(tenant_id: str, user_id: str) -> str:
    """A verified user's visitor id: stable across devices, and never the tenant's own user id."""
    return VERIFIED_USER_PREFIX + hashlib.sha256(f"{tenant_id}\n{user_id}".encode()).hexdigest()[:32]


def origin_allowed(allowed: list[str], origin: str | None) -> bool:
    """Whether a widget on ``origin`` (the handshake's ``Origin`` header) may connect. An empty list
    allows any origin (and clients that send none, such as scripts); otherwise the origin must be one
    of the list exactly (scheme, host and port), or match a ``https://*.example.com`` entry."""
    if not allowed:
        return True
    if not origin:
        return False
    normalized = origin.strip().rstrip("/").lower()
    for entry in allowed:
        candidate = entry.strip().rstrip("/").lower()
        if candidate == normalized:
            return True
        if "://*." in candidate:
            scheme, _, suffix = candidate.partition("://*.")
            parts = urlsplit(normalized)
            if parts.scheme == scheme and parts.netloc.endswith("." + suffix):
                return True
    return False
