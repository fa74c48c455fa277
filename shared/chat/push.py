"""The outbound port: frames to a WebSocket connection through API Gateway's @connections API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any

from shared.errors import ConnectionGone, UpstreamError
from shared.settings import Settings


def callback_url(settings: Settings, domain_name: str, stage: str) -> str:
    """The @connections base URL: a configured endpoint, else https://{domainName}/{stage} as AWS documents."""
    if settings.connections_endpoint:
        return settings.connections_endpoint.rstrip("/")
    return f"https://{domain_name}/{stage}"


class ClientPush(ABC):
    @abstractmethod
    def send(self, connection_id: str, frame: str) -> None:
        """Deliver one frame; raises ConnectionGone when the connection no longer exists."""

    @abstractmethod
    def close(self, connection_id: str) -> None:
        """Close the connection from the server side (best effort)."""


class ApiGatewayPush(ClientPush):
    def __init__(self, client: Any) -> None:
        self._client = client

    def send(self, connection_id: str, frame: str) -> None:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=frame.encode())
        except self._client.exceptions.GoneException:
            raise ConnectionGone(f"connection {connection_id} is gone") from None
        except self._client.exceptions.PayloadTooLargeException as exc:
            raise UpstreamError(f"frame too large for @connections: {exc}") from None

    def close(self, connection_id: str) -> None:
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except self._client.exceptions.GoneException:
            pass


@lru_cache(maxsize=16)
def api_gateway_push(endpoint_url: str, region: str) -> ApiGatewayPush:
    """One management-API client per callback URL, reused across invocations of a warm function."""
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "apigatewaymanagementapi",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(
            connect_timeout=2,
            read_timeout=5,
            retries={"max_attempts": 2, "mode": "standard"},
            parameter_validation=False,  # every frame is a post: its parameters are built here
        ),
    )
    return ApiGatewayPush(client)
