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
    from shared.aws_clients import aws_client

    # Every frame is a post whose parameters are built here: no per-call validation.
    client = aws_client(
        "apigatewaymanagementapi", region=region, endpoint_url=endpoint_url, read_timeout=5, attempts=3, validate=False
    )
    return ApiGatewayPush(client)
