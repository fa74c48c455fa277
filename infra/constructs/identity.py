"""The deployment's visitor-token signing key: the connect function checks visitors' tokens with it and
the message function issues them (shared/chat/identity.py).

It is an SSM Parameter Store ``SecureString`` (a standard parameter: no monthly fee, encrypted with the
AWS managed key ``aws/ssm``: no key fee), not a Secrets Manager secret ($0.40 a month, the largest line
of the default profile's idle floor once it had no search cluster). Neither key of the stack uses
Secrets Manager's rotation (both are rotated by hand: docs/deploy.md), and keeping the admin key in a
secret of its own keeps each function's read grant to its own key (a single JSON secret would let the
internet-facing connect and message functions read the admin key too).

CloudFormation cannot create a ``SecureString``, and a value generated at synth would sit in the
template, so a small custom resource generates the random key inside Lambda and puts it (never
overwriting one that exists: a prod key retained from an earlier stack keeps visitors' tokens valid).
Deleting the stack deletes it, unless the environment retains its resources (prod).
"""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import Duration
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.config import DeployConfig
from infra.constants import SERVICE
from infra.nag import acknowledge

# Inline (CloudFormation's ZipFile, where the cfnresponse module is provided); it runs once per deploy.
WRITER_CODE = '''
import secrets

import boto3
import cfnresponse

ssm = boto3.client("ssm")


def handler(event, context):
    name = event["ResourceProperties"]["Name"]
    try:
        if event["RequestType"] == "Create":
            try:
                ssm.put_parameter(
                    Name=name,
                    Type="SecureString",
                    Value=secrets.token_urlsafe(48),
                    Description=event["ResourceProperties"]["Description"],
                    Overwrite=False,
                )
            except ssm.exceptions.ParameterAlreadyExists:
                pass  # kept from an earlier stack: the key visitors' tokens are signed with stays
        elif event["RequestType"] == "Delete":  # prod retains the resource: CloudFormation never asks
            try:
                ssm.delete_parameter(Name=name)
            except ssm.exceptions.ParameterNotFound:
                pass
        cfnresponse.send(event, context, cfnresponse.SUCCESS, {}, name)
    except Exception as exc:
        cfnresponse.send(event, context, cfnresponse.FAILED, {}, name, reason=str(exc)[:500])
'''


class VisitorTokenKey(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.parameter_name = f"/{SERVICE}/{config.env}/visitor-token-key"
        stack = cdk.Stack.of(self)
        self.parameter_arn = stack.format_arn(
            service="ssm", resource="parameter", resource_name=self.parameter_name.lstrip("/")
        )
        role = iam.Role(
            self,
            "WriterRole",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description="Puts (once) and deletes the visitor-token signing key parameter",
        )
        # aws/ssm grants encryption to every principal of the account through SSM: no KMS statement.
        role.add_to_policy(
            iam.PolicyStatement(actions=["ssm:PutParameter", "ssm:DeleteParameter"], resources=[self.parameter_arn])
        )
        log_group = logs.LogGroup(
            self, "WriterLogs", retention=logs.RetentionDays.ONE_MONTH, removal_policy=config.removal_policy
        )
        log_group.grant_write(role)
        writer = lambda_.Function(
            self,
            "Writer",
            runtime=lambda_.Runtime.PYTHON_3_12,
            architecture=lambda_.Architecture.ARM_64,
            handler="index.handler",
            code=lambda_.Code.from_inline(WRITER_CODE),
            timeout=Duration.seconds(30),
            memory_size=128,
            role=role,
            log_group=log_group,
            description="kefu: generates the visitor-token signing key into SSM Parameter Store (deploy time)",
        )
        self.resource = cdk.CustomResource(
            self,
            "Parameter",
            service_token=writer.function_arn,
            resource_type="Custom::SecureParameter",
            properties={
                "Name": self.parameter_name,
                "Description": "kefu visitor-token signing key (HMAC-SHA256 over tenant and visitor id)",
            },
            removal_policy=config.removal_policy,
        )
        acknowledge(
            writer,
            "AwsSolutions-L1",
            "A deploy-time helper pinned to the python3.12 runtime the stack's functions use (its inline "
            "code needs only boto3 and cfnresponse); moved with them.",
        )

    def grant_read(self, grantee: iam.IGrantable) -> None:
        iam.Grant.add_to_principal(grantee=grantee, actions=["ssm:GetParameter"], resource_arns=[self.parameter_arn])
