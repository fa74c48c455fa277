"""Random keys generated into Secrets Manager by the stack (found by ARN, never by a fixed name)."""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.config import DeployConfig
from infra.nag import acknowledge


def generated_secret(
    scope: Construct, *, config: DeployConfig, description: str, length: int, why_not_rotated: str
) -> secretsmanager.Secret:
    """A secret ``Secret`` under ``scope`` holding ``length`` random letters and digits. A generated name:
    a deleted secret's name stays taken for its recovery window, and prod retains it, so a fixed name
    would block a redeploy. ``why_not_rotated`` answers cdk-nag's rotation rule."""
    secret = secretsmanager.Secret(
        scope,
        "Secret",
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            password_length=length, exclude_punctuation=True, include_space=False
        ),
        removal_policy=config.removal_policy,
    )
    acknowledge(secret, "AwsSolutions-SMG4", why_not_rotated)
    return secret
