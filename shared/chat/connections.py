"""$connect / $disconnect logic: admit a visitor with the tenant's widget key, or an agent with their
own key (``role=agent``), and remember the connection."""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable

from shared.chat.push import ClientPush
from shared.errors import BadRequest, Forbidden, Unauthorized
from shared.handoff.agents import agent_id_of, key_matches
from shared.state.records import Connection, new_visitor_id
from shared.state.store import StateStore

_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}$")
_MAX_PAGE_CHARS = 500


def open_connection(
    store: StateStore,
    *,
    connection_id: str,
    query: dict[str, str],
    connected_at: int,
    domain_name: str,
    stage: str,
) -> Connection:
    """Check the credentials and store the connection. Raises Unauthorized, Forbidden or BadRequest."""
    role = query.get("role", "visitor")
    if role == "agent":
        connection = _agent_connection(store, query, connection_id, connected_at, domain_name, stage)
    elif role == "visitor":
        connection = _visitor_connection(store, query, connection_id, connected_at, domain_name, stage)
    else:
        raise BadRequest("'role' must be 'visitor' (the default) or 'agent'")
    store.put_connection(connection)
    return connection


def _visitor_connection(
    store: StateStore, query: dict[str, str], connection_id: str, connected_at: int, domain_name: str, stage: str
) -> Connection:
    tenant_id = query.get("tenant", "")
    key = query.get("key", "")
    if not tenant_id or not key:
        raise Unauthorized("query parameters 'tenant' and 'key' (the widget key) are required")
    tenant = store.get_tenant(tenant_id) if len(tenant_id) <= 64 else None
    # Unknown tenant and wrong key look the same from outside.
    if tenant is None or not hmac.compare_digest(tenant.widget_key.encode(), key.encode()):
        raise Forbidden("unknown tenant or wrong widget key")
    visitor_id = query.get("visitor") or new_visitor_id()
    if not _VISITOR_ID.match(visitor_id):
        raise BadRequest("'visitor' must be 8-64 characters of letters, digits, '_' or '-'")
    # What the widget says about the page is informational (shown to agents), never trusted: a bad
    # value is dropped rather than refusing the chat.
    language = query.get("lang")
    return Connection(
        connection_id=connection_id,
        tenant_id=tenant.tenant_id,
        visitor_id=visitor_id,
        connected_at=connected_at,
        domain_name=domain_name,
        stage=stage,
        page=(query.get("page") or "")[:_MAX_PAGE_CHARS] or None,
        language=language if language and _LANGUAGE.match(language) else None,
    )


def _agent_connection(
    store: StateStore, query: dict[str, str], connection_id: str, connected_at: int, domain_name: str, stage: str
) -> Connection:
    key = query.get("key", "")
    if not key:
        raise Unauthorized("query parameter 'key' (the agent key) is required for role=agent")
    agent_id = agent_id_of(key)
    agent = store.get_agent(agent_id) if agent_id and len(agent_id) <= 64 else None
    # Unknown agent, wrong key, disabled agent and another tenant's agent look the same from outside.
    if (
        agent is None
        or agent.disabled
        or not key_matches(agent, key)
        or query.get("tenant", agent.tenant_id) != agent.tenant_id
    ):
        raise Forbidden("unknown agent or wrong agent key")
    return Connection(
        connection_id=connection_id,
        tenant_id=agent.tenant_id,
        visitor_id=agent.agent_id,
        connected_at=connected_at,
        domain_name=domain_name,
        stage=stage,
        role="agent",
        agent_id=agent.agent_id,
    )


def close_connection(store: StateStore, connection_id: str, push: Callable[[], ClientPush]) -> Connection | None:
    """Forget the connection; returns what it was (None if it was never stored or already forgotten).
    An agent's last tab closing shows them offline to their colleagues (``push`` is built only then)."""
    connection = store.get_connection(connection_id)
    store.delete_connection(connection_id)
    if connection is not None and connection.role == "agent" and connection.agent_id:
        # Imported here: visitors' connects and disconnects (nearly all of them) never need it.
        from shared.handoff.notify import Notifier
        from shared.handoff.service import Handoff

        handoff = Handoff(store, Notifier(store, push()))
        handoff.agent_left(connection.tenant_id, connection.agent_id, connection_id)
    return connection
