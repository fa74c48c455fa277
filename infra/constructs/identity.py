"""The deployment's visitor-token secret: the connect function checks visitors' tokens with it and
the message function issues them (shared/chat/identity.py)."""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge


class VisitorTokenSecret(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.secret = secretsmanager.Secret(
            self,
            "Secret",
            description="kefu visitor-token signing key (HMAC-SHA256 over tenant and visitor id)",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True, include_space=False
            ),
            removal_policy=config.removal_policy,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "A signing key only this stack's functions read: rotating it logs every visitor out (each "
            "starts as a new visitor on reconnect), so it is rotated by hand (docs/deploy.md), not on a "
            "schedule.",
        )
