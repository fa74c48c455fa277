"""The deployment's visitor-token secret: the connect function checks visitors' tokens with it and
the message function issues them (shared/chat/identity.py)."""

from __future__ import annotations

from constructs import Construct

from infra.config import DeployConfig
from infra.constructs.secrets import generated_secret


class VisitorTokenSecret(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, config: DeployConfig) -> None:
        super().__init__(scope, construct_id)
        self.secret = generated_secret(
            self,
            config=config,
            description="kefu visitor-token signing key (HMAC-SHA256 over tenant and visitor id)",
            length=64,
            why_not_rotated="A signing key only this stack's functions read: rotating it logs every visitor "
            "out (each starts as a new visitor on reconnect), so it is rotated by hand after a leak "
            "(docs/deploy.md), not on a schedule.",
        )
