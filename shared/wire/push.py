"""The outbound port: frames to a WebSocket connection through API Gateway's @connections API."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
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


# --- the second kind of destination: a messaging channel's customer (shared/channels/push.py) ---

_CHANNEL_PREFIX = "channel:"


def channel_connection_id(channel_id: str, customer_id: str) -> str:
    """The "connection" of a channel customer (API Gateway's connection ids never contain ':')."""
    return f"{_CHANNEL_PREFIX}{channel_id}:{customer_id}"


def is_channel_connection(connection_id: str) -> bool:
    return connection_id.startswith(_CHANNEL_PREFIX)


def channel_customer(connection_id: str) -> tuple[str, str]:
    """(channel id, customer id) of a channel connection id (channel ids contain no ':')."""
    _, channel_id, customer_id = connection_id.split(":", 2)
    return channel_id, customer_id


class RoutedPush(ClientPush):
    """One port, two kinds of destination: a WebSocket connection (@connections) or a channel's
    customer. The channel destination is built on first use (the connect function never needs it)."""

    def __init__(self, sockets: ClientPush, channels: Callable[[], ClientPush]) -> None:
        self._sockets = sockets
        self._channels = channels

    def _for(self, connection_id: str) -> ClientPush:
        return self._channels() if is_channel_connection(connection_id) else self._sockets

    def send(self, connection_id: str, frame: str) -> None:
        self._for(connection_id).send(connection_id, frame)

    def close(self, connection_id: str) -> None:
        self._for(connection_id).close(connection_id)
