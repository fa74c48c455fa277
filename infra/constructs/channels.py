"""The channels function: WeChat Official Accounts, WeCom's 微信客服 and app webhooks calling kefu.

``ANY /channels/{channelId}`` on the existing HTTP API (the admin API's) goes to the channels function
(functions/channels/handler.py): it verifies the platform's signature, keeps the first sighting of each
platform message, stores it as a visitor message, queues the answer on the generate queue and answers
the platform at once (WeChat: ``success`` within 5 s). The answer goes back out from generate, through
the channel's API (docs/channels.md).

- No API Gateway authorization on this route: WeChat, WeCom and the tenants' apps cannot sign SigV4 or
  carry kefu's admin key; each request is authenticated by the platform's own signature in the
  function (``Channel.verify``), and refused (401) before anything is stored. The route has its own
  throttle (infra/constants.py ``CHANNELS_THROTTLE_*``), so a flood is refused by API Gateway.
- Least privilege (what the code calls, listed in infra/constructs/access.py and checked against a
  recording of the calls in tests/integration/test_channels_aws_calls.py): the limits table for the
  channels' shared state (``chan:`` items: tokens, locks, cursors, windows, first sightings and the
  channel records) and the visitor limits, the conversation tables the message is stored in (as the
  message function stores a widget's), SendMessage on the generate queue, POST to the WebSocket API's
  @connections (the agents' consoles), and GetSecretValue on the tenants' channel secrets
  (``kefu/<env>/channels/*``) only. generate and message, which send answers and agents' replies
  through the channels, get GetSecretValue on the same prefix (``grant_channel_senders``).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from constructs import Construct

from infra.bundling.python_assets import PythonBundler
from infra.config import DeployConfig
from infra.constants import CHANNELS_ROUTE, CHANNELS_THROTTLE_BURST, CHANNELS_THROTTLE_RATE
from infra.constructs.access import READS_CHANNEL_SECRETS
from infra.constructs.admin_api import AdminApi
from infra.constructs.functions import SPECS, FunctionInputs, KefuFunctions, build_function, settings_env
from infra.constructs.websocket_api import WebSocketApi
from infra.nag import acknowledge, arn_finding

READ_SECRET = "secretsmanager:GetSecretValue"
# Every method: WeChat verifies the URL with GET and posts messages; WeCom the same; apps POST.
ROUTE_KEY = f"ANY {CHANNELS_ROUTE}"


def channel_secrets_arn(scope: Construct, config: DeployConfig) -> str:
    """Every tenant's channel secret (``kefu/<env>/channels/<tenantId>/<name>``, shared/channels/secrets.py)."""
    stack = cdk.Stack.of(scope)
    return (
        f"arn:{stack.partition}:secretsmanager:{stack.region}:{stack.account}:secret:{config.tenant_channel_secrets}/*"
    )


def grant_read_channel_secrets(role: iam.Role, config: DeployConfig) -> None:
    role.add_to_policy(iam.PolicyStatement(actions=[READ_SECRET], resources=[channel_secrets_arn(role, config)]))
    acknowledge(
        role,
        "AwsSolutions-IAM5",
        "Tenants' channel credentials (WeChat AppSecret and EncodingAESKey, WeCom corpsecret, webhook secrets) "
        "live under one name prefix per deployment, one secret per tenant and name; the adapters read "
        "them by name, so the role may read that prefix and nothing else.",
        findings=(arn_finding(role, "secretsmanager", f"secret:{config.tenant_channel_secrets}/*"),),
    )


class ChannelsFunction(Construct):
    """The channels function, its role and log group, and its unauthenticated, throttled route."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        bundler: PythonBundler,
        functions: KefuFunctions,
        inputs: FunctionInputs,
        http_api: AdminApi,
        websocket: WebSocketApi,
    ) -> None:
        super().__init__(scope, construct_id)
        environment = {
            "POWERTOOLS_LOG_LEVEL": "INFO",
            "POWERTOOLS_TRACER_CAPTURE_RESPONSE": "false",
            **settings_env(
                aws_region=inputs.region,
                generate_queue_url=inputs.generate_queue_url,
                tenant_secrets_prefix=config.tenant_channel_secrets,
                # the agents' consoles hear of channel conversations through the WebSocket API
                connections_endpoint=websocket.callback_url,
                **{f"{name}_table": table for name, table in inputs.tables.items()},
            ),
            **(settings_env(redis_url=config.redis_url) if config.redis_url else {}),
        }
        self.function, self.role, self.log_group = build_function(
            self,
            "channels",
            SPECS["channels"],
            config=config,
            bundler=bundler,
            layer=functions.shared_layer,
            environment=environment,
        )
        # Its grants (access.py: tables, the generate queue, @connections, the channel secrets), its
        # alarms and the stack-wide acknowledgments come with registration.
        functions.register("channels", self.function, self.role, self.log_group)

        self.route = apigwv2.HttpRoute(
            self,
            "Route",
            http_api=http_api.api,
            route_key=apigwv2.HttpRouteKey.with_(CHANNELS_ROUTE, apigwv2.HttpMethod.ANY),
            integration=integrations.HttpLambdaIntegration("Channels", self.function),
            # Explicitly none: with admin_iam_auth the API's default authorizer is IAM, which no platform can sign.
            authorizer=apigwv2.HttpNoneAuthorizer(),
        )
        acknowledge(
            self.route,
            "AwsSolutions-APIG4",
            "The platforms (WeChat, WeCom, tenants' apps) cannot send SigV4 or kefu's keys: every request "
            "carries the platform's own signature (SHA-1 over token, timestamp and nonce, or HMAC-SHA256), "
            "which the channels function verifies before storing anything (Channel.verify, 401 otherwise).",
        )
        # The route's own throttle on the shared stage (the admin routes keep the stage default).
        stage = http_api.stage.node.default_child
        assert isinstance(stage, apigwv2.CfnStage)
        stage.route_settings = {
            ROUTE_KEY: {
                "ThrottlingRateLimit": CHANNELS_THROTTLE_RATE,
                "ThrottlingBurstLimit": CHANNELS_THROTTLE_BURST,
            }
        }
        # A stage's RouteSettings may name only routes that exist already.
        route = self.route.node.default_child
        assert isinstance(route, apigwv2.CfnRoute)
        stage.add_resource_dependency(route)
        # What the platforms are given: the API's own URL, or the custom domain it is served under.
        base = config.channels_public_url.rstrip("/") + "/" if config.channels_public_url else http_api.url
        self.public_base_url = base
        self.url = f"{base}channels/"


def grant_channel_senders(*, functions: KefuFunctions, config: DeployConfig, websocket: WebSocketApi) -> None:
    """The functions that call the platforms with the tenants' credentials (access.py
    READS_CHANNEL_SECRETS): channels (tokens, WeCom's pulls), generate (answers and notices to channel
    customers; WeCom's pull jobs) and message (agents' replies). Each may read the channel secrets'
    prefix and knows it; generate, which takes pulled messages through the visitor intake, also
    knows the @connections URL and the queue (the message function has both from its own API)."""
    for name in READS_CHANNEL_SECRETS:
        grant_read_channel_secrets(functions.roles[name], config)
        if name != "channels":  # set with its other settings
            for key, value in settings_env(tenant_secrets_prefix=config.tenant_channel_secrets).items():
                functions.functions[name].add_environment(key, value)
    generate = functions.functions["generate"]
    for key, value in settings_env(connections_endpoint=websocket.callback_url).items():
        generate.add_environment(key, value)
