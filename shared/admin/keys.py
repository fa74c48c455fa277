"""Per-tenant admin keys: ``tak.<tenantId>.<keyId>.<secret>``, shown once, stored as SHA-256."""

from __future__ import annotations

import hashlib
import secrets

TENANT_KEY_PREFIX = "tak."


def hash_key(key: str) -> str:
    # The secret is 32 random bytes: a fast hash is enough (nothing to brute-force from a dictionary).
    return hashlib.sha256(key.encode()).hexdigest()


def new_tenant_key(tenant_id: str) -> tuple[str, str, str]:
    """(key id, key, its hash)."""
    key_id = "k_" + secrets.token_hex(6)
    key = f"{TENANT_KEY_PREFIX}{tenant_id}.{key_id}.{secrets.token_urlsafe(32)}"
    return key_id, key, hash_key(key)


def parse_tenant_key(key: str) -> tuple[str, str] | None:
    """(tenant id, key id) named by a tenant admin key, or None when it is not shaped like one."""
    parts = key.removeprefix(TENANT_KEY_PREFIX).split(".")
    if not key.startswith(TENANT_KEY_PREFIX) or len(parts) != 3 or not all(parts) or len(parts[0]) > 64:
        return None
    return parts[0], parts[1]
