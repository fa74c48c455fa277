"""Who may do what: every permission a function has beyond its own logs and X-Ray, in one table.

Derived from what the code calls (shared/state/dynamodb.py and the logic modules that use it):

- connect: new connections per address (a rate counter: UpdateItem on the limits table without Redis),
  ``get_tenant`` (widget key check), ``get_agent`` (agent key check), ``put_connection``,
  ``get_connection`` + ``delete_connection`` on $disconnect; when an agent's last tab closes it tells
  the colleagues (``agent_connections``: Query on the agent index) through @connections.
- message: ``get_connection``, ``set_connection_conversation`` (UpdateItem), ``get_conversation``,
  ``put_conversation``, ``find_by_client_id``/``get_message`` (GetItem), rate-limit counters (UpdateItem
  on the limits table, without Redis), the month's questions (a conditional UpdateItem on the limits
  table; a BatchGetItem to name the spent quota), ``add_visitor_message``
  (a TransactWrite of two conditional Puts: PutItem); sends the ack; enqueues the job. Handoff
  (shared/handoff/): ``get_tenant`` (HandoffConfig), ``change_status``/``set_preview``/``advance_read``
  (UpdateItem), ``queued_conversations``/``assigned_conversations`` (Query on the queue and assignee
  indexes), ``conversation_connections``/``agent_connections`` (Query on the conversation and agent
  indexes), ``delete_connection`` (a gone connection during fan-out), ``add_message``/``add_client_message``
  (PutItem), ``set_feedback`` (UpdateItem), ``messages_page`` (Query), ``get_agent``, ``list_agents``
  (Query on the agents' tenant index), ``set_agent_away`` (UpdateItem); ``change_status`` of an
  assignment or release is a TransactWrite of UpdateItems on the conversation and the agents' loads.
- generate: ``get_message`` (already answered?), ``recent_messages`` (Query), ``add_answer``
  (conditional PutItem); the tenant's monthly usage (UpdateItem on the limits table, quotas.py);
  invokes retrieve; streams frames. Its answer gate reads the conversation (GetItem), counts answers
  without a source (``record_grounding``, UpdateItem) and may hand the
  conversation off: the same queue/assignee/agent/connection calls as the message function.
  Its model gateway (``grant_model_access``) reads ``get_tenant`` (TenantConfig.model), the model
  secrets (the deployment's, and tenants' under one name prefix), calls ConverseStream on the
  configured Bedrock models and InvokeEndpointWithResponseStream on the configured SageMaker
  endpoints.
- retrieve: ``get_tenant`` (the tenant's RetrievalConfig: weights, threshold, reranking; cached
  for Settings.tenant_config_ttl_seconds); searches the knowledge index.
- admin: ``put_tenant``/``get_tenant``, ``get_conversation``, ``list_messages`` (Query); indexes
  knowledge; reads its key. Agents: ``put_agent``/``update_agent``/``get_agent``/``list_agents``/``delete_agent`` and
  ``assigned_conversations`` (is the agent still holding conversations?). A key rotation or disabling
  logs the agent out: ``agent_connections`` (Query on the agent index), ``get_connection`` +
  ``delete_connection``, the colleagues' presence frame and closing the sockets through @connections.
  Usage (``GET …/usage``): BatchGetItem on the limits table.
  Dead letters (shared/wire/dead_letters.py): reads the job queue's RedrivePolicy, receives/deletes on
  the dead-letter queue and sends its jobs back to the job queue.
- ingest (presigned uploads, shared/ingest/uploads.py): the uploads ledger (GetItem, conditional PutItem
  on ``upload#`` items of the limits table), ``get_tenant`` and ``put_tenant`` (the recalibrated
  threshold); reads and deletes the upload (GetObject, DeleteObject under ``uploads/``); writes the
  knowledge like admin. admin signs the presigned POSTs (PutObject under ``uploads/``: S3 checks the
  signer's permission when the POST arrives).
- channels (functions/channels/handler.py; shared/channels/inbox.py, shared/chat/channel_desk.py): the
  ``chan:`` items of the limits table (shared/channels/dynamodb_state.py: the channel record by id,
  access tokens and their refresh locks, WeCom cursors and pull locks, reply windows, first sightings:
  GetItem, conditional PutItem, DeleteItem), the tenants' channel secrets (GetSecretValue under
  ``kefu/<env>/channels/``), then each new message through the visitor intake as message takes a
  widget's: the customer's "connection" (get/put), the conversation and stored message, limits and
  quota, the handoff (转人工) with its queue/assignee/agent queries and the agents' consoles told
  through @connections; SendMessage of the answer job (or of WeCom's pull job) on the generate queue.
- generate and message also push to channel customers (shared/channels/push.py: the channel record,
  the token, the reply window, a "sent once" mark, the channel secrets; a refusal noted on the
  conversation and in its transcript); generate runs WeCom's pull jobs, which take each pulled
  message through the visitor intake (as channels does) and queue its answer.
  tests/integration/test_channels_aws_calls.py records these paths' calls against moto and checks
  each is granted here.
- retrieve, admin and ingest, the knowledge models (``grant_knowledge_model_access``; shared/knowledge/factory.py):
  a Bedrock embedder calls InvokeModel on its model (passages at ingestion, each question at search);
  a Bedrock reranker calls Rerank (no resource-level permissions: ``*``) and, through it, InvokeModel
  on its model. With the local USE embedder and no reranker (the defaults) nothing is granted.

A new store call in a function needs its action added here; an AccessDenied in the logs names it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import aws_cdk as cdk
from aws_cdk import aws_iam as iam
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import (
    AGENT_CONNECTION_INDEX,
    ASSIGNEE_INDEX,
    CONVERSATION_INDEX,
    QUEUE_INDEX,
    TENANT_INDEX,
    TICKET_INDEX,
    FunctionName,
    TableName,
)
from infra.constructs.admin_api import AdminKey
from infra.constructs.functions import KefuFunctions
from infra.constructs.knowledge import KnowledgeStore
from infra.constructs.queue import GenerateQueue
from infra.constructs.state import StateTables
from infra.constructs.uploads import UploadsBucket
from infra.constructs.websocket_api import WebSocketApi
from infra.nag import acknowledge, arn_finding

GET = "dynamodb:GetItem"
PUT = "dynamodb:PutItem"
UPDATE = "dynamodb:UpdateItem"
DELETE = "dynamodb:DeleteItem"
QUERY = "dynamodb:Query"
BATCH_GET = "dynamodb:BatchGetItem"


@dataclass(frozen=True)
class TableAccess:
    actions: tuple[str, ...]
    indexes: tuple[str, ...] = ()


TABLE_ACCESS: dict[FunctionName, dict[TableName, TableAccess]] = {
    "connect": {
        "tenants": TableAccess((GET,)),
        "agents": TableAccess((GET,)),
        "connections": TableAccess((GET, PUT, DELETE, QUERY), indexes=(AGENT_CONNECTION_INDEX,)),
        # New connections per address when no Redis is configured (shared/chat/rate_limits.py).
        "limits": TableAccess((UPDATE,)),
    },
    "message": {
        "tenants": TableAccess((GET,)),
        "agents": TableAccess((GET, UPDATE, QUERY), indexes=(TENANT_INDEX,)),
        "connections": TableAccess((GET, UPDATE, DELETE, QUERY), indexes=(CONVERSATION_INDEX, AGENT_CONNECTION_INDEX)),
        "conversations": TableAccess((GET, PUT, UPDATE, QUERY), indexes=(QUEUE_INDEX, ASSIGNEE_INDEX, TICKET_INDEX)),
        "messages": TableAccess((GET, PUT, UPDATE, QUERY)),
        # Rate-limit counters when no Redis is configured (shared/chat/rate_limits.py); monthly
        # quotas (shared/chat/quotas.py: a conditional UpdateItem, a BatchGetItem when one is spent);
        # an agent's reply to a channel customer (shared/channels/push.py: the channel record, the
        # access token and its lock, the reply window, the "sent once" mark: chan: items).
        "limits": TableAccess((GET, PUT, DELETE, UPDATE, BATCH_GET)),
    },
    "retrieve": {
        "tenants": TableAccess((GET,)),
    },
    "generate": {
        # Monthly usage counters: answers and tokens (shared/chat/quotas.py). Answers to channel
        # customers (shared/channels/push.py: chan: items as for message) and WeCom's pull jobs
        # (shared/channels/inbox.py: the cursor and its lock; each pulled message through the visitor
        # intake as the channels function takes one: BatchGetItem names a spent quota).
        "limits": TableAccess((GET, PUT, DELETE, UPDATE, BATCH_GET)),
        "messages": TableAccess((GET, PUT, QUERY)),
        # The answer gate and the no-answer handoff (shared/chat/gate.py).
        "tenants": TableAccess((GET,)),
        "agents": TableAccess((GET, UPDATE, QUERY), indexes=(TENANT_INDEX,)),
        # + a pulled message's customer "connection" and conversation (put_connection, claim, start).
        "connections": TableAccess(
            (GET, PUT, UPDATE, DELETE, QUERY), indexes=(CONVERSATION_INDEX, AGENT_CONNECTION_INDEX)
        ),
        "conversations": TableAccess((GET, PUT, UPDATE, QUERY), indexes=(QUEUE_INDEX, ASSIGNEE_INDEX)),
    },
    "channels": {
        # A platform's message through the visitor intake, as message takes a widget's (ChannelDesk):
        # the tenant, limits and quota, the customer's "connection" (put_connection), the conversation,
        # the stored message, the handoff (转人工: queue and assignee queries, agents' loads, the
        # agents' consoles told through their connections; a gone one deleted).
        "tenants": TableAccess((GET,)),
        "agents": TableAccess((GET, UPDATE, QUERY), indexes=(TENANT_INDEX,)),
        "connections": TableAccess(
            (GET, PUT, UPDATE, DELETE, QUERY), indexes=(CONVERSATION_INDEX, AGENT_CONNECTION_INDEX)
        ),
        "conversations": TableAccess((GET, PUT, UPDATE, QUERY), indexes=(QUEUE_INDEX, ASSIGNEE_INDEX)),
        "messages": TableAccess((GET, PUT)),
        # chan: items (shared/channels/dynamodb_state.py: channel records, access tokens and their
        # locks, WeCom cursors, reply windows, first sightings of platform message ids; conditional
        # puts, reads, deletes); rate-limit counters and the month's questions (UpdateItem; a
        # BatchGetItem names a spent quota).
        "limits": TableAccess((GET, PUT, DELETE, UPDATE, BATCH_GET)),
    },
    "admin": {
        "tenants": TableAccess((GET, PUT)),
        "conversations": TableAccess((GET, QUERY), indexes=(ASSIGNEE_INDEX,)),
        "messages": TableAccess((QUERY,)),
        "agents": TableAccess((GET, PUT, UPDATE, DELETE, QUERY), indexes=(TENANT_INDEX,)),
        "connections": TableAccess((GET, DELETE, QUERY), indexes=(AGENT_CONNECTION_INDEX,)),
        # The usage endpoint (shared/chat/quotas.py); channel records (shared/channels/directory.py,
        # chan: items: conditional puts and deletes).
        "limits": TableAccess((BATCH_GET, GET, PUT, DELETE)),
    },
    "ingest": {
        # The tenant (does it exist? its RetrievalConfig), and its recalibrated threshold after a write.
        "tenants": TableAccess((GET, PUT)),
        # The uploads ledger (shared/state/uploads.py: upload# items, compare-and-set PutItem).
        "limits": TableAccess((GET, PUT)),
    },
}

# Functions that queue jobs on the generate queue: message and channels (a visitor's question), generate
# (a channel's pulled messages: WeCom only announces them), admin (dead letters sent back).
SENDS_JOBS: tuple[FunctionName, ...] = ("message", "channels", "generate", "admin")
# Functions that call the platforms with tenants' channel credentials: channels (tokens, WeCom's pulls),
# generate (answers and notices to channel customers), message (agents' replies to them).
READS_CHANNEL_SECRETS: tuple[FunctionName, ...] = ("channels", "generate", "message")
# Functions that push frames to visitors and agents through the @connections API.
# channels: a channel customer's message or 转人工 tells the agents' consoles (KEFU_CONNECTIONS_ENDPOINT).
POSTS_TO_CONNECTIONS: tuple[FunctionName, ...] = ("connect", "message", "generate", "admin", "channels")
# Functions that close connections through @connections (DELETE): admin, logging an agent out.
CLOSES_CONNECTIONS: tuple[FunctionName, ...] = ("admin",)


def grant_least_privilege(
    *,
    functions: KefuFunctions,
    state: StateTables,
    queue: GenerateQueue,
    knowledge: KnowledgeStore,
    admin_key: AdminKey,
    websocket: WebSocketApi,
    uploads: UploadsBucket,
) -> None:
    roles = functions.roles
    for function, tables in TABLE_ACCESS.items():
        for table, access in tables.items():
            state.grant(roles[function], table, access.actions, indexes=access.indexes)
    for function in POSTS_TO_CONNECTIONS:
        websocket.grant_post_to_connections(roles[function])
    for function in CLOSES_CONNECTIONS:
        websocket.grant_post_to_connections(roles[function], method="DELETE")
    for function in SENDS_JOBS:
        queue.queue.grant_send_messages(roles[function])
    # The admin API lists the dead-letter queue and sends its jobs back (shared/wire/dead_letters.py).
    queue.dead_letters.grant_consume_messages(roles["admin"])
    # Only generate may invoke retrieve (the event source grants it the queue's consume actions).
    functions.functions["retrieve"].grant_invoke_latest_version(roles["generate"])
    knowledge.grant_read(roles["retrieve"])
    knowledge.grant_write(roles["admin"])  # ingestion; its search route reads too
    admin_key.secret.grant_read(roles["admin"])
    # Presigned uploads: admin signs POSTs for uploads/ keys; ingest reads and removes each upload, then
    # writes the knowledge (the S3 event invokes it: the bucket's notification grants that).
    uploads.grant_presign(roles["admin"])
    uploads.grant_ingest(roles["ingest"])
    knowledge.grant_write(roles["ingest"])


# --- the knowledge models (retrieve and admin; shared/knowledge/factory.py) ---

BEDROCK_INVOKE = "bedrock:InvokeModel"
BEDROCK_RERANK = "bedrock:Rerank"
# Both embed questions and rerank candidates through KnowledgeService, so they need the same models.
USES_KNOWLEDGE_MODELS: tuple[FunctionName, ...] = ("retrieve", "admin", "ingest")


def grant_knowledge_model_access(*, functions: KefuFunctions, config: DeployConfig) -> None:
    """InvokeModel on the Bedrock embedding and rerank models the deployment chose, Rerank for the latter."""
    for name in USES_KNOWLEDGE_MODELS:
        # admin and ingest embed with the rebuild's next model during a rebuild (DeployConfig.ingest_config).
        chosen = config if name == "retrieve" else config.ingest_config
        models = tuple(filter(None, (chosen.bedrock_embedding_model, chosen.bedrock_rerank_model)))
        if not models:
            continue
        role = functions.roles[name]
        grant_bedrock(
            role,
            BEDROCK_INVOKE,
            models,
            "A cross-region inference profile serves the embedding or rerank model from any region of its geography.",
        )
        if chosen.bedrock_rerank_model:
            # bedrock:Rerank has no resource types (Service Authorization Reference); the model it may use
            # is bounded by the InvokeModel statement above.
            role.add_to_policy(iam.PolicyStatement(actions=[BEDROCK_RERANK], resources=["*"]))
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "bedrock:Rerank supports no resource-level permissions; which rerank model it may run is "
                "limited by the InvokeModel grant on that model alone. X-Ray PutTraceSegments/"
                "PutTelemetryRecords have none either (active tracing).",
                findings=("Resource::*",),
            )


# --- the model gateway (generate only; shared/model/) ---

BEDROCK_STREAM = "bedrock:InvokeModelWithResponseStream"  # ConverseStream
SAGEMAKER_STREAM = "sagemaker:InvokeEndpointWithResponseStream"
READ_SECRET = "secretsmanager:GetSecretValue"
# Cross-region inference profiles ("us.", "eu.", "apac.", "global." + a model id) route to the
# foundation model in other regions of their geography.
_PROFILE_PREFIX = re.compile(r"^(us|eu|apac|us-gov|ca|jp|au|global)\.")
_ANY_REGION_MODEL = "Resource::arn:<AWS::Partition>:bedrock:*::foundation-model/{model}"


def bedrock_resources(stack: cdk.Stack, models: tuple[str, ...]) -> tuple[list[str], list[str]]:
    """The ARNs ConverseStream is called on for these model ids, inference profile ids or ARNs, and
    cdk-nag's spelling of the wildcard ones."""
    partition, region, account = stack.partition, stack.region, stack.account
    if "*" in models:
        resources = [
            f"arn:{partition}:bedrock:*::foundation-model/*",
            f"arn:{partition}:bedrock:{region}:{account}:inference-profile/*",
        ]
        return resources, [_ANY_REGION_MODEL.format(model="*"), arn_finding(stack, "bedrock", "inference-profile/*")]
    resources, wildcards = [], []
    for model in models:
        if model.startswith("arn:"):
            resources.append(model)
        elif _PROFILE_PREFIX.match(model):
            base = _PROFILE_PREFIX.sub("", model)
            resources.append(f"arn:{partition}:bedrock:{region}:{account}:inference-profile/{model}")
            resources.append(f"arn:{partition}:bedrock:*::foundation-model/{base}")
            wildcards.append(_ANY_REGION_MODEL.format(model=base))
        else:
            resources.append(f"arn:{partition}:bedrock:{region}::foundation-model/{model}")
    return resources, wildcards


def grant_bedrock(role: iam.Role, action: str, models: tuple[str, ...], why_wildcards: str) -> None:
    """``action`` on these Bedrock models (ids, inference profiles or ARNs); the cross-region wildcards
    an inference profile needs are acknowledged to cdk-nag with ``why_wildcards``."""
    resources, wildcards = bedrock_resources(cdk.Stack.of(role), models)
    role.add_to_policy(iam.PolicyStatement(actions=[action], resources=resources))
    if wildcards:
        acknowledge(role, "AwsSolutions-IAM5", why_wildcards, findings=tuple(wildcards))


# What the admin API does with tenants' channel secrets: create, replace and check they exist; never read.
CHANNEL_SECRET_ADMIN = (
    "secretsmanager:CreateSecret",
    "secretsmanager:PutSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:TagResource",
)


def grant_channel_secrets(*, functions: KefuFunctions, config: DeployConfig) -> None:
    """The admin API writes tenants' channel credentials under one prefix (never reads them back)."""
    role = functions.roles["admin"]
    stack = cdk.Stack.of(role)
    prefix = f"{config.tenant_channel_secrets}/"
    resource = f"arn:{stack.partition}:secretsmanager:{stack.region}:{stack.account}:secret:{prefix}*"
    role.add_to_policy(iam.PolicyStatement(actions=list(CHANNEL_SECRET_ADMIN), resources=[resource]))
    acknowledge(
        role,
        "AwsSolutions-IAM5",
        "Tenants' channel credentials (WeChat AppSecret, WeCom corpsecret, webhook secrets) live under one "
        "name prefix per deployment; admin may create and replace them there, not read them.",
        findings=(arn_finding(role, "secretsmanager", f"secret:{prefix}*"),),
    )


def grant_model_access(*, functions: KefuFunctions, config: DeployConfig) -> None:
    """What generate's model adapters call: the deployment's and tenants' model secrets, the Bedrock
    models and SageMaker endpoints named in the deployment config; nothing more."""
    role = functions.roles["generate"]
    stack = cdk.Stack.of(role)
    for index, reference in enumerate(filter(None, (config.llm_api_key_secret, config.llm_client_cert_secret))):
        _secret(role, f"ModelSecret{index}", reference).grant_read(role)
    prefix = config.tenant_model_secrets
    tenant_secrets = f"arn:{stack.partition}:secretsmanager:{stack.region}:{stack.account}:secret:{prefix}*"
    role.add_to_policy(iam.PolicyStatement(actions=[READ_SECRET], resources=[tenant_secrets]))
    acknowledge(
        role,
        "AwsSolutions-IAM5",
        "Tenants' model API keys and client certificates live under one name prefix (TenantConfig.model "
        "references them by name); generate may read only that prefix.",
        findings=(arn_finding(role, "secretsmanager", f"secret:{prefix}*"),),
    )
    if config.bedrock_model_ids:
        grant_bedrock(
            role,
            BEDROCK_STREAM,
            config.bedrock_model_ids,
            "Cross-region inference profiles serve the model from any region of their geography; '*' "
            "in the bedrock_models context allows every model.",
        )
    if config.sagemaker_endpoint_names:
        names = config.sagemaker_endpoint_names
        arns = [f"arn:{stack.partition}:sagemaker:{stack.region}:{stack.account}:endpoint/{n.lower()}" for n in names]
        role.add_to_policy(iam.PolicyStatement(actions=[SAGEMAKER_STREAM], resources=arns))
        if "*" in names:
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "'*' in the sagemaker_endpoints context: any endpoint of this account and region.",
                findings=(arn_finding(role, "sagemaker", "endpoint/*"),),
            )


def _secret(scope: Construct, construct_id: str, reference: str) -> secretsmanager.ISecret:
    if not reference.startswith("arn:"):
        return secretsmanager.Secret.from_secret_name_v2(scope, construct_id, reference)
    # A complete ARN ends with Secrets Manager's six-character suffix.
    if re.search(r"-[A-Za-z0-9]{6}$", reference):
        return secretsmanager.Secret.from_secret_complete_arn(scope, construct_id, reference)
    return secretsmanager.Secret.from_secret_partial_arn(scope, construct_id, reference)
