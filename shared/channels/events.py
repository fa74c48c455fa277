"""The event the channels function receives: a platform's request to ``ANY /channels/{channelId}``
(HTTP API, payload format 2.0), as a Powertools parser model that turns into the port's ``InboundRequest``."""

from __future__ import annotations

import base64

from aws_lambda_powertools.utilities.parser.models import APIGatewayProxyEventV2Model
from pydantic import Field

from shared.channels.base import InboundRequest


class ChannelRequestEvent(APIGatewayProxyEventV2Model):
    headers: dict[str, str] = Field(default_factory=dict)

    @property
    def channel_id(self) -> str:
        return (self.pathParameters or {}).get("channelId", "")

    def inbound(self) -> InboundRequest:
        """Lower-case header names, the body as bytes (HTTP API base64-encodes binary bodies)."""
        body = self.body if isinstance(self.body, str) else ""
        raw = base64.b64decode(body) if self.isBase64Encoded else body.encode()
        return InboundRequest(
            method=self.requestContext.http.method.upper(),
            query=dict(self.queryStringParameters or {}),
            headers={name.lower(): value for name, value in self.headers.items()},
            body=raw,
        )


def http_response(status: int, body: str, content_type: str = "text/plain; charset=utf-8") -> dict[str, object]:
    """An HTTP API (payload 2.0) response."""
    return {"statusCode": status, "headers": {"content-type": content_type}, "body": body}
