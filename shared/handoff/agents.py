"""Agent keys: ``{agent_id}.{secret}``, stored as the secret's SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

from shared.state.records import Agent


def new_agent_key(agent_id: str) -> tuple[str, str]:
    """A fresh key for the agent and the hash to store: (key, key_hash). The key is shown once."""
    secret = secrets.token_urlsafe(24)
    return f"{agent_id}.{secret}", _hash(secret)


def agent_id_of(key: str) -> str | None:
    agent_id, dot, secret = key.partition(".")
    if not dot or not agent_id or not secret or len(key) > 200:
        return None
    return agent_id


def key_matches(agent: Agent, key: str) -> bool:
    _, _, secret = key.partition(".")
    return hmac.compare_digest(_hash(secret).encode(), agent.key_hash.encode())


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()
