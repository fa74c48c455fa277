"""$connect / $disconnect logic: admit a visitor with the tenant's widget key, or an agent with their
own key (``role=agent``), and remember the connection.

An agent's key travels in the ``Sec-WebSocket-Protocol`` header, never in the URL: browsers cannot set
other headers on a WebSocket, but they do send the subprotocols a page offers
(``new WebSocket(url, ["kefu.v1", "kefu.key." + key])``), API Gateway hands them to $connect, and
the handshake answers with ``kefu.v1`` only. URLs end up in access logs, proxies and browser
history; this header does not (docs/security.md)."""

from __future__ import annotations

import functools
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from shared.chat.identity import VisitorTokens, origin_allowed, user_verified, visitor_id_for_user
from shared.chat.rate_limits import ChatLimits, RateLimiter
from shared.errors import BadRequest, ConnectionGone, Forbidden, KefuError, Unauthorized, UpstreamError, http_status
from shared.handoff.agents import agent_id_of, key_matches
from shared.state.records import Agent, Connection, Tenant, new_visitor_id
from shared.state.store import StateStore
from shared.wire.events import ConnectEvent, DisconnectEvent
from shared.wire.protocol import SessionEnded
from shared.wire.push import ClientPush

_VISITOR_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_LANGUAGE = re.compile(r"^[A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8}){0,3}$")
_MAX_PAGE_CHARS = 500
PROTOCOL = "kefu.v1"
_KEY_PROTOCOL = "kefu.key."
# A browser sees a refused handshake only as a closed socket, exactly like a network failure, and
# would retry for ever. A client that also offers this subprotocol is told a permanent refusal
# (wrong widget key, unknown tenant, origin not allowed, suspended, malformed request) by a handshake
# that answers with it: nothing is stored, so the socket can do nothing, and the client closes it and
# stops retrying. Throttling (429) stays a plain refusal: it passes.
REFUSED_PROTOCOL = "kefu.refused"


def offered_protocols(header: str | None) -> list[str]:
    """The subprotocols a client offered (``Sec-WebSocket-Protocol``: comma-separated tokens)."""
    return [part.strip() for part in (header or "").split(",") if part.strip()]


def accepted_protocol(header: str | None) -> str | None:
    """What the handshake must answer in ``Sec-WebSocket-Protocol`` (a browser refuses the connection
    when it offered subprotocols and none comes back)."""
    return PROTOCOL if PROTOCOL in offered_protocols(header) else None


@dataclass(frozen=True)
class Admission:
    """The connect function's use case: a handshake admitted (or refused with a KefuError) and stored;
    a closed socket forgotten."""

    store: StateStore
    # Built at the first visitor handshake (a deployment without a token secret fails only then).
    tokens: Callable[[], VisitorTokens]
    limiter: RateLimiter | None
    limits: ChatLimits
    push_for: Callable[[str], ClientPush]
    callback_url_of: Callable[[str, str], str]

    def admit(self, event: ConnectEvent) -> tuple[Connection, dict[str, Any]]:
        """The stored connection, and the handshake's answer (with the subprotocol a browser needs)."""
        context = event.request_context
        if self.limiter is not None:
            self.limiter.spend(self.limits.for_connect(event.source_ip))
        protocols = event.header("sec-websocket-protocol")
        connection = open_connection(
            self.store,
            connection_id=context.connection_id,
            query=event.query_string_parameters,
            connected_at=int(context.connected_at.timestamp() * 1000),
            domain_name=context.domain_name,
            stage=context.stage,
            protocols=protocols,
            tokens=self.tokens(),
            origin=event.header("origin"),
            source_ip=event.source_ip,
        )
        protocol = accepted_protocol(protocols)
        answer: dict[str, Any] = {"statusCode": 200}
        if protocol:
            answer["headers"] = {"Sec-WebSocket-Protocol": protocol}
        return connection, answer

    def leave(self, event: DisconnectEvent) -> dict[str, Any]:
        """Forget the connection (an agent's last tab closing shows them offline); API Gateway ignores
        the answer to $disconnect."""
        context = event.request_context
        url = self.callback_url_of(context.domain_name, context.stage)
        close_connection(self.store, context.connection_id, lambda: self.push_for(url))
        return {"statusCode": 200}


def refused_handshake(error: KefuError, protocols: str | None) -> dict[str, Any]:
    """The $connect response for a refused connection (see REFUSED_PROTOCOL)."""
    permanent = isinstance(error, Unauthorized | Forbidden | BadRequest)
    if permanent and REFUSED_PROTOCOL in offered_protocols(protocols):
        return {"statusCode": 200, "headers": {"Sec-WebSocket-Protocol": REFUSED_PROTOCOL}}
    return {"statusCode": http_status(error), "body": error.message}


def open_connection(
    store: StateStore,
    *,
    connection_id: str,
    query: dict[str, str],
    connected_at: int,
    domain_name: str,
    stage: str,
    tokens: VisitorTokens,
    protocols: str | None = None,
    source_ip: str | None = None,
    origin: str | None = None,
) -> Connection:
    """Check the credentials and store the connection. Raises Unauthorized, Forbidden or BadRequest.
    ``protocols`` is the ``Sec-WebSocket-Protocol`` header (an agent's key), ``origin`` the ``Origin``
    header (checked against the tenant's allowed origins)."""
    role = query.get("role", "visitor")
    if role == "agent":
        if "key" in query:
            raise Unauthorized(
                f"an agent key in the URL is refused (URLs end up in logs); send it as the WebSocket "
                f"subprotocol '{_KEY_PROTOCOL}<key>'"
            )
        key = next(
            (p.removeprefix(_KEY_PROTOCOL) for p in offered_protocols(protocols) if p.startswith(_KEY_PROTOCOL)), ""
        )
        connection = _agent_connection(store, query, key, connection_id, connected_at, domain_name, stage)
    elif role == "visitor":
        connection = _visitor_connection(
            store, query, connection_id, connected_at, domain_name, stage, tokens=tokens, origin=origin
        )
        connection.source_ip = (source_ip or "")[:64] or None
    else:
        raise BadRequest("'role' must be 'visitor' (the default) or 'agent'")
    store.put_connection(connection)
    return connection


def widget_key_matches(tenant: Tenant, key: str, at_ms: int) -> bool:
    """The current widget key, or the one it replaced while its grace period lasts."""
    if hmac.compare_digest(tenant.widget_key.encode(), key.encode()):
        return True
    previous, until = tenant.previous_widget_key, tenant.previous_widget_key_until
    return bool(previous and until and at_ms < until and hmac.compare_digest(previous.encode(), key.encode()))


def _visitor_connection(
    store: StateStore,
    query: dict[str, str],
    connection_id: str,
    connected_at: int,
    domain_name: str,
    stage: str,
    *,
    tokens: VisitorTokens,
    origin: str | None,
) -> Connection:
    tenant_id = query.get("tenant", "")
    key = query.get("key", "")
    if not tenant_id or not key:
        raise Unauthorized("query parameters 'tenant' and 'key' (the widget key) are required")
    tenant = store.get_tenant(tenant_id) if len(tenant_id) <= 64 else None
    # Unknown tenant and wrong key look the same from outside.
    if tenant is None or not widget_key_matches(tenant, key, connected_at):
        raise Forbidden("unknown tenant or wrong widget key")
    if tenant.suspended:
        raise Forbidden("this service is suspended")
    if not origin_allowed(tenant.config.widget.allowed_origins, origin):
        raise Forbidden("this page's origin may not open the chat (the tenant's widget.allowedOrigins)")
    claimed = query.get("visitor")
    if claimed and not _VISITOR_ID.match(claimed):
        raise BadRequest("'visitor' must be 8-64 characters of letters, digits, '_' or '-'")
    # Who the visitor is comes from the server: a verified user of the tenant's site, the id a token
    # signed by this deployment names, or else a fresh id (a bare client-chosen id proves nothing).
    user_id = query.get("userId", "")
    if user_id and len(user_id) <= 200 and user_verified(tenant.identity_secret, user_id, query.get("userHash", "")):
        visitor_id = visitor_id_for_user(tenant.tenant_id, user_id)
    else:
        visitor_id = tokens.visitor_of(tenant.tenant_id, query.get("token", "")) or new_visitor_id()
    # What the widget says about the page is informational (shown to agents), never trusted: a bad
    # value is dropped rather than refusing the chat.
    language = query.get("lang")
    return Connection(
        connection_id=connection_id,
        tenant_id=tenant.tenant_id,
        visitor_id=visitor_id,
        connected_at=connected_at,
        domain_name=domain_name,
        stage=stage,
        page=_page_without_query(query.get("page") or ""),
        language=language if language and _LANGUAGE.match(language) else None,
    )


def _page_without_query(page: str) -> str | None:
    """Scheme, host and path of the visitor's page (an older widget sent its query and fragment,
    which can hold tokens or personal data); agents see this."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(page.strip())
    except ValueError:
        return None
    kept = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.scheme and parts.netloc else parts.path
    return kept[:_MAX_PAGE_CHARS] or None


def _agent_connection(
    store: StateStore,
    query: dict[str, str],
    key: str,
    connection_id: str,
    connected_at: int,
    domain_name: str,
    stage: str,
) -> Connection:
    if not key:
        raise Unauthorized(f"role=agent needs the agent key as the WebSocket subprotocol '{_KEY_PROTOCOL}<key>'")
    agent_id = agent_id_of(key)
    agent = store.get_agent(agent_id) if agent_id and len(agent_id) <= 64 else None
    # Unknown agent, wrong key, disabled agent and another tenant's agent look the same from outside.
    if (
        agent is None
        or agent.disabled
        or not key_matches(agent, key)
        or query.get("tenant", agent.tenant_id) != agent.tenant_id
    ):
        raise Forbidden("unknown agent or wrong agent key")
    tenant = store.get_tenant(agent.tenant_id)
    if tenant is None or tenant.suspended:
        raise Forbidden("this service is suspended")
    return Connection(
        connection_id=connection_id,
        tenant_id=agent.tenant_id,
        visitor_id=agent.agent_id,
        connected_at=connected_at,
        domain_name=domain_name,
        stage=stage,
        role="agent",
        agent_id=agent.agent_id,
    )


def close_connection(store: StateStore, connection_id: str, push: Callable[[], ClientPush]) -> Connection | None:
    """Forget the connection; returns what it was (None if it was never stored or already forgotten).
    An agent's last tab closing shows them offline to their colleagues (``push`` is built only then)."""
    connection = store.get_connection(connection_id)
    store.delete_connection(connection_id)
    if connection is not None and connection.role == "agent" and connection.agent_id:
        # Imported here: visitors' connects and disconnects (nearly all of them) never need it.
        from shared.handoff.notify import Notifier
        from shared.handoff.service import Handoff

        handoff = Handoff(store, Notifier(store, push()))
        handoff.agent_left(connection.tenant_id, connection.agent_id, connection_id)
    return connection


def close_agent_sessions(
    store: StateStore,
    agent: Agent,
    push_for: Callable[[Connection], ClientPush],
    reason: Literal["key_rotated", "disabled", "suspended"],
) -> int:
    """Log the agent out of every open console (after a key rotation, or when disabled): each
    connection is forgotten first, so its next frame is refused even if the socket's close fails,
    told why (``session.ended``: the console asks for a key rather than reconnecting), then closed
    through @connections. Returns how many there were."""
    closed = 0
    ended = SessionEnded(reason=reason).to_json()
    for connection in store.agent_connections(agent.tenant_id):
        if connection.agent_id != agent.agent_id:
            continue
        push = push_for(connection)
        close_connection(store, connection.connection_id, functools.partial(_same, push))
        try:
            push.send(connection.connection_id, ended)
        except (ConnectionGone, UpstreamError):
            pass  # already gone: nothing to tell
        push.close(connection.connection_id)
        closed += 1
    return closed


def _same(push: ClientPush) -> ClientPush:
    return push
