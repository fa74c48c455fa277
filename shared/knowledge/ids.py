"""Validation of the identifiers that reach storage (directory names, filter terms)."""

from __future__ import annotations

import re

from shared.errors import BadRequest

# A safe single path component: no separators, cannot be "." or "..", no leading dot or dash.
_TENANT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")


def validate_tenant_id(tenant_id: str) -> str:
    """Return ``tenant_id`` unchanged, or raise BadRequest when it is not a safe identifier."""
    if not isinstance(tenant_id, str) or not _TENANT_ID.fullmatch(tenant_id) or ".." in tenant_id:
        raise BadRequest(
            "invalid tenant id: use 1-128 letters, digits, '_', '-' or '.', starting with a letter or digit"
        )
    return tenant_id
