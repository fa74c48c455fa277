"""The visitors' WebSocket API: routes, Lambda integrations, a throttled stage with access logs.

Route selection reads ``action`` from each frame's JSON body: ``sendMessage`` goes to the message
function, and so does anything else (``$default``), which answers an ``unknown_action`` error frame.
"""

from __future__ import annotations

import json

import aws_cdk as cdk
import jsii
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import (
    ROUTE_SELECTION_EXPRESSION,
    SEND_MESSAGE_ROUTE,
    WEBSOCKET_STAGE,
    WEBSOCKET_THROTTLE_BURST,
    WEBSOCKET_THROTTLE_RATE,
    resource_name,
)
from infra.nag import acknowledge, arn_finding

# No query string: the $connect URL carries the tenant's widget key.
_ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "requestTime": "$context.requestTime",
    "ip": "$context.identity.sourceIp",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "connectionId": "$context.connectionId",
    "status": "$context.status",
    "integrationLatency": "$context.integrationLatency",
    "error": "$context.error.message",
}


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogs:
    """A stage's access log settings: JSON lines into one log group."""

    def __init__(self, log_group: logs.ILogGroup, fields: dict[str, str]) -> None:
        self._destination = apigwv2.LogGroupLogDestination(log_group)
        self._format = apigateway.AccessLogFormat.custom(json.dumps(fields))

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return self._format


class WebSocketApi(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: DeployConfig,
        connect: lambda_.IFunction,
        message: lambda_.IFunction,
    ) -> None:
        super().__init__(scope, construct_id)
        connect_integration = integrations.WebSocketLambdaIntegration("Connect", connect)
        message_integration = integrations.WebSocketLambdaIntegration("Message", message)
        self.api = apigwv2.WebSocketApi(
            self,
            "Api",
            api_name=resource_name(config.env, "chat"),
            description="kefu visitor chat (wire protocol v1)",
            route_selection_expression=ROUTE_SELECTION_EXPRESSION,
            connect_route_options=apigwv2.WebSocketRouteOptions(integration=connect_integration),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=connect_integration),
            default_route_options=apigwv2.WebSocketRouteOptions(integration=message_integration),
        )
        self.api.add_route(SEND_MESSAGE_ROUTE, integration=message_integration)
        self.access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            retention=logs.RetentionDays.THREE_MONTHS if config.is_production else logs.RetentionDays.TWO_WEEKS,
            removal_policy=config.removal_policy,
        )
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=WEBSOCKET_STAGE,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(rate_limit=WEBSOCKET_THROTTLE_RATE, burst_limit=WEBSOCKET_THROTTLE_BURST),
            access_log_settings=AccessLogs(self.access_logs, _ACCESS_LOG_FORMAT),
        )
        if config.apigw_cloudwatch_role:
            self._set_account_logging_role()
        acknowledge(
            self.api,
            "AwsSolutions-APIG4",
            "$connect is authorized by the connect function itself: it admits a connection only "
            "with the tenant id and that tenant's widget key (constant-time compare). The widget key "
            "is public by design (it sits in the site's HTML), so an IAM or Cognito authorizer would "
            "add nothing. Other WebSocket routes cannot carry authorizers: they act on an admitted "
            "connection, which the message function looks up in the connections table.",
        )

    @property
    def url(self) -> str:
        """``wss://{api}.execute-api.{region}.amazonaws.com/{stage}``"""
        return self.stage.url

    @property
    def callback_url(self) -> str:
        """``https://{api}.execute-api.{region}.amazonaws.com/{stage}``: the @connections API, for
        functions not behind this API that still push to its connections (KEFU_CONNECTIONS_ENDPOINT)."""
        return self.stage.callback_url

    def grant_post_to_connections(self, grantee: iam.IGrantable, method: str = "POST") -> None:
        """``POST @connections/{id}`` on this stage only: sending frames, not closing or inspecting
        (``method="DELETE"``: closing, for the admin function logging an agent out)."""
        stack = cdk.Stack.of(self)
        arn = stack.format_arn(
            service="execute-api",
            resource=self.api.api_id,
            resource_name=f"{WEBSOCKET_STAGE}/{method}/@connections/*",
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(actions=["execute-api:ManageConnections"], resources=[arn])
        )
        api_id = stack.get_logical_id(self.api.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            grantee,  # type: ignore[arg-type]
            "AwsSolutions-IAM5",
            "@connections/{connectionId}: connection ids are minted per visitor at run time. Scoped to "
            f"this API, its one stage and {method} ({'closing' if method == 'DELETE' else 'sending frames'}) only.",
            findings=(arn_finding(self, "execute-api", f"<{api_id}>/{WEBSOCKET_STAGE}/{method}/@connections/*"),),
        )

    def _set_account_logging_role(self) -> None:
        """WebSocket (unlike HTTP) APIs log through the account's API Gateway CloudWatch role.

        The role is retained on stack deletion: the account setting would otherwise point at a deleted
        role and break every other API's logging in this region.
        """
        role = iam.Role(
            self,
            "ApiGatewayLogsRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway account-level role for writing access and execution logs",
            inline_policies={
                "logs": iam.PolicyDocument(
                    statements=[
                        iam.PolicyStatement(
                            actions=[
                                "logs:CreateLogGroup",
                                "logs:CreateLogStream",
                                "logs:DescribeLogGroups",
                                "logs:DescribeLogStreams",
                                "logs:PutLogEvents",
                                "logs:GetLogEvents",
                                "logs:FilterLogEvents",
                            ],
                            resources=[
                                cdk.Stack.of(self).format_arn(
                                    service="logs",
                                    resource="log-group",
                                    resource_name="*",
                                    arn_format=cdk.ArnFormat.COLON_RESOURCE_NAME,
                                )
                            ],
                        )
                    ]
                )
            },
        )
        role.apply_removal_policy(cdk.RemovalPolicy.RETAIN)
        account = apigateway.CfnAccount(self, "ApiGatewayAccount", cloud_watch_role_arn=role.role_arn)
        self.stage.node.add_dependency(account)
        acknowledge(
            role,
            "AwsSolutions-IAM5",
            "API Gateway's account-level logging role writes the log groups of every API in "
            "this account and region, whose names it chooses; this is the scope AWS documents for it.",
            findings=(arn_finding(self, "logs", "log-group:*"),),
        )
