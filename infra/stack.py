"""The kefu stack: composes the constructs and wires them together. Resources live in the constructs."""

from __future__ import annotations

import aws_cdk as cdk
from constructs import Construct

from infra.bundling.python_assets import PythonBundler
from infra.config import DeployConfig
from infra.constants import PYTHON_VERSION, SERVICE
from infra.constructs.access import (
    READS_CHANNEL_SECRETS,
    grant_channel_secrets,
    grant_knowledge_model_access,
    grant_least_privilege,
    grant_model_access,
)
from infra.constructs.admin_api import AdminApi, AdminKey
from infra.constructs.channels import ChannelsFunction, grant_channel_senders
from infra.constructs.egress import ChannelEgress
from infra.constructs.functions import SPECS, FunctionInputs, KefuFunctions
from infra.constructs.identity import VisitorTokenKey
from infra.constructs.knowledge import KnowledgeStore
from infra.constructs.monitoring import Monitoring
from infra.constructs.network import ModelNetwork
from infra.constructs.queue import GenerateQueue
from infra.constructs.state import StateTables
from infra.constructs.static_site import StaticSite
from infra.constructs.uploads import UploadsBucket
from infra.constructs.websocket_api import WebSocketApi
from infra.nag import acknowledge


class KefuStack(cdk.Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        bundler: PythonBundler,
        **kwargs: object,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        cdk.Tags.of(self).add("service", SERVICE)
        cdk.Tags.of(self).add("environment", config.env)
        for warning in bundler.warnings:
            cdk.Annotations.of(self).add_warning_v2("kefu:bundling", warning)

        state = StateTables(self, "State", config=config)
        queue = GenerateQueue(self, "Queue", config=config, consumer_timeout=SPECS["generate"].timeout)
        knowledge = KnowledgeStore(self, "Knowledge", config=config)
        uploads = UploadsBucket(self, "Uploads", config=config)
        admin_key = AdminKey(self, "AdminKey", config=config)
        visitor_tokens = VisitorTokenKey(self, "VisitorTokens", config=config)
        inputs = FunctionInputs(
            region=self.region,
            tables=state.names,
            generate_queue_url=queue.queue.queue_url,
            knowledge=knowledge.settings,
            admin_key_secret_arn=admin_key.secret.secret_arn,
            visitor_token_parameter=visitor_tokens.parameter_name,
            uploads_bucket=uploads.name,
        )
        functions = KefuFunctions(self, "Functions", config=config, bundler=bundler, inputs=inputs)
        queue.feed(functions.functions["generate"])
        websocket = WebSocketApi(
            self,
            "WebSocket",
            config=config,
            connect=functions.functions["connect"],
            message=functions.functions["message"],
        )
        admin_api = AdminApi(self, "Admin", config=config, admin=functions.functions["admin"])
        # The platforms' callbacks: the channels function on the same HTTP API (registered with the others).
        channels = ChannelsFunction(
            self,
            "Channels",
            config=config,
            bundler=bundler,
            functions=functions,
            inputs=inputs,
            http_api=admin_api,
            websocket=websocket,
        )
        # The admin API hands tenants this URL + /channels/<channel id> (shared/admin/routes/channels.py).
        functions.functions["admin"].add_environment("KEFU_CHANNELS_PUBLIC_URL", channels.public_base_url)
        site = StaticSite(
            self,
            "Web",
            config=config,
            static_dir=bundler.repo_root / "web",
            websocket_url=websocket.url,
            admin_url=admin_api.url,
        )
        # The console's knowledge page calls the admin API from the site's origin.
        admin_api.allow_origin(site.base_url)
        grant_least_privilege(
            functions=functions,
            state=state,
            queue=queue,
            knowledge=knowledge,
            admin_key=admin_key,
            websocket=websocket,
            uploads=uploads,
        )
        # Presigned uploads: S3 invokes ingest for each new object; a browser page on the console's
        # origin may POST to the bucket.
        uploads.notify(functions.functions["ingest"])
        uploads.allow_browser_uploads_from(site.base_url)
        for function in ("connect", "message"):
            visitor_tokens.grant_read(functions.roles[function])
            # the key exists before either function can take a visitor
            functions.functions[function].node.add_dependency(visitor_tokens.resource)
        # The model gateway: secrets by reference, Bedrock/SageMaker, and the hybrid-cloud VPC placement.
        grant_model_access(functions=functions, config=config)
        # Tenants' channel credentials (shared/channels/secrets.py, the admin API's /secrets route).
        grant_channel_secrets(functions=functions, config=config)
        # channels, generate and message call the platforms with the tenants' channel credentials.
        grant_channel_senders(functions=functions, config=config, websocket=websocket)
        # The embedder and reranker of retrieve and admin, when they are Bedrock models.
        grant_knowledge_model_access(functions=functions, config=config)
        model_network = (
            ModelNetwork(
                self,
                "ModelNetwork",
                config=config,
                function=functions.functions["generate"],
                role=functions.roles["generate"],
            )
            if config.in_vpc
            else None
        )
        # Every function that calls the platforms behind one NAT gateway: channels, generate, message
        # (agents' replies); in the hybrid profile generate is already in the customer's subnets.
        egress = (
            ChannelEgress(
                self,
                "ChannelEgress",
                config=config,
                functions=[
                    (functions.functions[name], functions.roles[name])
                    for name in READS_CHANNEL_SECRETS
                    if model_network is None or name != "generate"
                ],
                model_network=model_network,
            )
            if config.fixed_channel_egress
            else None
        )
        monitoring = Monitoring(
            self,
            "Monitoring",
            config=config,
            functions=functions.functions,
            queue=queue,
            websocket=websocket,
            admin_api=admin_api,
        )

        cdk.CfnOutput(self, "WebSocketUrl", value=websocket.url, description="Visitors' chat endpoint (wss://)")
        cdk.CfnOutput(self, "AdminUrl", value=admin_api.url, description="Admin HTTP API base URL")
        cdk.CfnOutput(
            self,
            "ChannelsUrl",
            value=channels.url,
            description="Platforms' callback URLs: this + <channelId> (the webhookUrl the admin API returns)",
        )
        if egress is not None and egress.public_ip is not None:
            cdk.CfnOutput(
                self,
                "ChannelsEgressIp",
                value=egress.public_ip,
                description="Calls to WeChat/WeCom come from this address: add it to their IP allowlists",
            )
        cdk.CfnOutput(
            self,
            "WidgetScriptUrl",
            value=f"{site.base_url}/widget/kefu-widget.js",
            description="<script src=… data-ws=<WebSocketUrl> data-tenant=… data-key=…> on any page",
        )
        cdk.CfnOutput(
            self, "AgentConsoleUrl", value=f"{site.base_url}/console/", description="Agents log in with their key"
        )
        cdk.CfnOutput(
            self,
            "AdminKeySecretArn",
            value=admin_key.secret.secret_arn,
            description="aws secretsmanager get-secret-value --secret-id <this> --query SecretString",
        )
        cdk.CfnOutput(
            self,
            "VisitorTokenKeyParameter",
            value=visitor_tokens.parameter_name,
            description="SSM SecureString signing visitor tokens (rotate only after a leak: docs/deploy.md)",
        )
        cdk.CfnOutput(
            self, "KnowledgeEndpoint", value=knowledge.endpoint, description="Knowledge index: S3 bucket or OpenSearch"
        )
        cdk.CfnOutput(
            self, "AlarmTopicArn", value=monitoring.topic.topic_arn, description="Subscribe to get every alarm"
        )
        cdk.CfnOutput(self, "GenerateDeadLetterQueueUrl", value=queue.dead_letters.queue_url, description="Failed jobs")
        # For an existing OpenSearch domain, its access policy (or fine-grained access role mapping)
        # must name these roles.
        cdk.CfnOutput(self, "RetrieveRoleArn", value=functions.roles["retrieve"].role_arn, description="Searches")
        cdk.CfnOutput(self, "AdminRoleArn", value=functions.roles["admin"].role_arn, description="Indexes")
        cdk.CfnOutput(
            self, "IngestRoleArn", value=functions.roles["ingest"].role_arn, description="Indexes presigned uploads"
        )
        cdk.CfnOutput(self, "UploadsBucketName", value=uploads.name, description="Presigned uploads (raw, transient)")

        self._suppress_stack_wide(functions)

    def _suppress_stack_wide(self, functions: KefuFunctions) -> None:
        for role in functions.roles.values():
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level permissions "
                "(added by active tracing, used by the Powertools Tracer).",
                findings=("Resource::*",),
            )
        for function in functions.functions.values():
            acknowledge(
                function,
                "AwsSolutions-L1",
                f"Pinned to python{PYTHON_VERSION} on purpose: the bundles' wheels and bytecode are built for "
                "exactly this version (infra/constants.py PYTHON_VERSION). Moving to a newer runtime is a "
                "deliberate change with its own test run.",
            )
