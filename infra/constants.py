"""Names and sizes the stack uses, in one place.

Physical names carry the environment (``kefu-dev-tenants``) so two environments can share an account.
"""

from __future__ import annotations

from typing import Final, Literal

SERVICE: Final = "kefu"

Environment = Literal["dev", "prod"]
ENVIRONMENTS: Final[tuple[Environment, ...]] = ("dev", "prod")
DEFAULT_ENVIRONMENT: Final[Environment] = "dev"

# --- Lambda runtime target (the bundler builds wheels and bytecode for exactly this) ---
PYTHON_VERSION: Final = "3.12"
HANDLER: Final = "handler.handler"

FunctionName = Literal["connect", "message", "retrieve", "generate", "admin"]
FUNCTIONS: Final[tuple[FunctionName, ...]] = ("connect", "message", "retrieve", "generate", "admin")

# --- DynamoDB (keys must match shared/state/models.py) ---
TableName = Literal["tenants", "connections", "conversations", "messages", "agents", "limits"]
TABLES: Final[tuple[TableName, ...]] = ("tenants", "connections", "conversations", "messages", "agents", "limits")
TTL_ATTRIBUTE: Final = "expires_at"
CONVERSATION_INDEX: Final = "conversation-index"  # on connections
TENANT_INDEX: Final = "tenant-index"  # on conversations and agents
AGENT_CONNECTION_INDEX: Final = "agent-tenant-index"  # on connections (sparse: agents only)
QUEUE_INDEX: Final = "queue-index"  # on conversations (sparse: queued only)
ASSIGNEE_INDEX: Final = "assignee-index"  # on conversations (sparse: assigned only)
TICKET_INDEX: Final = "ticket-index"  # on conversations (sparse: open tickets only)

# --- SQS ---
GENERATE_MAX_RECEIVES: Final = 3  # then the job moves to the dead-letter queue

# --- API Gateway ---
ROUTE_SELECTION_EXPRESSION: Final = "$request.body.action"
SEND_MESSAGE_ROUTE: Final = "sendMessage"
WEBSOCKET_STAGE: Final = "chat"
WEBSOCKET_THROTTLE_RATE: Final = 100  # messages per second across the stage
WEBSOCKET_THROTTLE_BURST: Final = 200
ADMIN_THROTTLE_RATE: Final = 20
ADMIN_THROTTLE_BURST: Final = 40

# --- Knowledge ---
OPENSEARCH_INDEX: Final = "kefu-knowledge"


def resource_name(env: Environment, name: str) -> str:
    """``kefu-<env>-<name>``: the physical name of a resource of this environment."""
    return f"{SERVICE}-{env}-{name}"


def stack_name(env: Environment) -> str:
    return f"{SERVICE}-{env}"
