"""$connect / $disconnect logic: admit a visitor with the tenant's widget key, remember the connection."""

from __future__ import annotations

import hmac
import re

from shared.errors import BadRequest, Forbidden, Unauthorized
from shared.state.records import Connection, new_visitor_id
from shared.state.store import StateStore

_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def open_connection(
    store: StateStore,
    *,
    connection_id: str,
    query: dict[str, str],
    connected_at: int,
    domain_name: str,
    stage: str,
) -> Connection:
    """Check the widget key and store the connection. Raises Unauthorized, Forbidden or BadRequest."""
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
    connection = Connection(
        connection_id=connection_id,
        tenant_id=tenant.tenant_id,
        visitor_id=visitor_id,
        connected_at=connected_at,
        domain_name=domain_name,
        stage=stage,
    )
    store.put_connection(connection)
    return connection


def close_connection(store: StateStore, connection_id: str) -> None:
    store.delete_connection(connection_id)
