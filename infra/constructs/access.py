"""Who may do what: every permission a function has beyond its own logs and X-Ray, in one table.

Derived from what the code calls (shared/state/dynamodb.py and the logic modules that use it):

- connect: ``get_tenant`` (widget key check), ``put_connection``, ``delete_connection``.
- message: ``get_connection``, ``set_connection_conversation`` (UpdateItem), ``get_conversation``,
  ``put_conversation``, ``find_by_client_id``/``get_message`` (GetItem), ``add_visitor_message``
  (a TransactWrite of two conditional Puts: PutItem); sends the ack; enqueues the job.
- generate: ``get_message`` (already answered?), ``recent_messages`` (Query), ``add_answer``
  (conditional PutItem); invokes retrieve; streams frames.
- retrieve: searches the knowledge index; no tables.
- admin: ``put_tenant``/``get_tenant``, ``get_conversation``, ``list_messages`` (Query); indexes
  knowledge; reads its key.

A new store call in a function needs its action added here; an AccessDenied in the logs names it.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.constants import FunctionName, TableName
from infra.constructs.admin_api import AdminKey
from infra.constructs.functions import KefuFunctions
from infra.constructs.knowledge import KnowledgeStore
from infra.constructs.queue import GenerateQueue
from infra.constructs.state import StateTables
from infra.constructs.websocket_api import WebSocketApi

GET = "dynamodb:GetItem"
PUT = "dynamodb:PutItem"
UPDATE = "dynamodb:UpdateItem"
DELETE = "dynamodb:DeleteItem"
QUERY = "dynamodb:Query"


@dataclass(frozen=True)
class TableAccess:
    actions: tuple[str, ...]
    indexes: tuple[str, ...] = ()


TABLE_ACCESS: dict[FunctionName, dict[TableName, TableAccess]] = {
    "connect": {
        "tenants": TableAccess((GET,)),
        "connections": TableAccess((PUT, DELETE)),
    },
    "message": {
        "connections": TableAccess((GET, UPDATE)),
        "conversations": TableAccess((GET, PUT)),
        "messages": TableAccess((GET, PUT)),
    },
    "retrieve": {},
    "generate": {
        "messages": TableAccess((GET, PUT, QUERY)),
    },
    "admin": {
        "tenants": TableAccess((GET, PUT)),
        "conversations": TableAccess((GET,)),
        "messages": TableAccess((QUERY,)),
    },
}

# Functions that push frames to visitors through the @connections API.
POSTS_TO_CONNECTIONS: tuple[FunctionName, ...] = ("message", "generate")


def grant_least_privilege(
    *,
    functions: KefuFunctions,
    state: StateTables,
    queue: GenerateQueue,
    knowledge: KnowledgeStore,
    admin_key: AdminKey,
    websocket: WebSocketApi,
) -> None:
    roles = functions.roles
    for function, tables in TABLE_ACCESS.items():
        for table, access in tables.items():
            state.grant(roles[function], table, access.actions, indexes=access.indexes)
    for function in POSTS_TO_CONNECTIONS:
        websocket.grant_post_to_connections(roles[function])
    queue.queue.grant_send_messages(roles["message"])
    # Only generate may invoke retrieve (the event source grants it the queue's consume actions).
    functions.functions["retrieve"].grant_invoke_latest_version(roles["generate"])
    knowledge.grant_read(roles["retrieve"])
    knowledge.grant_write(roles["admin"])  # ingestion; its search route reads too
    admin_key.secret.grant_read(roles["admin"])
