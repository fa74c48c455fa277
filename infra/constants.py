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

FunctionName = Literal["connect", "message", "retrieve", "generate", "admin", "ingest", "channels"]
# Built by infra/constructs/functions.py; channels by its own construct (infra/constructs/channels.py).
CORE_FUNCTIONS: Final[tuple[FunctionName, ...]] = ("connect", "message", "retrieve", "generate", "admin", "ingest")
FUNCTIONS: Final[tuple[FunctionName, ...]] = (*CORE_FUNCTIONS, "channels")

# --- DynamoDB (keys must match shared/state/tables.py) ---
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
# A queue's visibility timeout is at least this many times its consumer's timeout (AWS's advice for
# Lambda event source mappings: the poller's own retries of a throttled invocation fit inside it).
VISIBILITY_TIMEOUT_FACTOR: Final = 6

# --- API Gateway ---
ROUTE_SELECTION_EXPRESSION: Final = "$request.body.action"
SEND_MESSAGE_ROUTE: Final = "sendMessage"
WEBSOCKET_STAGE: Final = "chat"
WEBSOCKET_THROTTLE_RATE: Final = 100  # messages per second across the stage
WEBSOCKET_THROTTLE_BURST: Final = 200
ADMIN_THROTTLE_RATE: Final = 20
ADMIN_THROTTLE_BURST: Final = 40
# The platforms' callbacks (ANY /channels/{channelId} on the same HTTP API, its own route throttle):
# WeChat and WeCom retry a callback that failed or took over 5 s, so a 429 in a burst is retried, not
# lost; past this rate a flood (or a forged-signature storm) is refused before any function runs.
CHANNELS_ROUTE: Final = "/channels/{channelId}"
CHANNELS_THROTTLE_RATE: Final = 50
CHANNELS_THROTTLE_BURST: Final = 100

# --- Regions ---
# Where every resource type of every profile exists (CloudFormation's registry, as cfn-lint's schemas
# record it; tests/infra/test_infra_lint.py lints each profile in each of these). OpenSearch Serverless
# is the narrowest service: it is missing from af-south-1, ap-southeast-3/4/5/7, ca-west-1,
# il-central-1, me-central-1 and mx-central-1. Bedrock models (optional) are per region: see
# docs/deploy.md.
DEPLOY_REGIONS: Final[tuple[str, ...]] = (
    "us-east-1",
    "us-east-2",
    "us-west-1",
    "us-west-2",
    "ca-central-1",
    "sa-east-1",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eu-central-1",
    "eu-central-2",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "me-south-1",
    "ap-east-1",
    "ap-south-1",
    "ap-south-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-southeast-1",
    "ap-southeast-2",
)


def resource_name(env: Environment, name: str) -> str:
    """``kefu-<env>-<name>``: the physical name of a resource of this environment."""
    return f"{SERVICE}-{env}-{name}"


def stack_name(env: Environment) -> str:
    return f"{SERVICE}-{env}"
