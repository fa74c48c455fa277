"""What the message function does with a frame: parse it, find its connection, check the tenant, the
rate limits and the monthly quota, then hand it to the visitor desk (shared/chat/visitor_desk.py) or
the agent desk (shared/handoff/desk.py); typed errors become error frames.

A visitor message is validated, stored once, acked, then handed to generation only while the bot owns
the conversation; while people own it, it goes to them instead. The function never waits for the
model, so API Gateway's 29 s integration timeout cannot cut an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from datetime import UTC, datetime

from shared.chat.identity import VisitorTokens
from shared.chat.quotas import MonthlyQuota, UsageLedger, month_of, quota_for
from shared.chat.rate_limits import ChatLimits, RateLimiter
from shared.chat.visitor_desk import IO, VisitorDesk
from shared.errors import BadRequest, Forbidden, KefuError
from shared.handoff.desk import AgentDesk
from shared.handoff.notify import Notifier
from shared.handoff.service import Handoff
from shared.observability import logger
from shared.state.cache import ContextCache
from shared.state.records import Connection, Conversation
from shared.state.store import StateStore
from shared.tenant_config import TenantConfigCache
from shared.wire.jobs import GenerationQueue
from shared.wire.protocol import (
    ErrorFrame,
    Feedback,
    LeaveMessage,
    RequestHuman,
    SendMessage,
    Session,
    SessionEnded,
    VisitorFrame,
    parse_client_frame,
)
from shared.wire.push import ClientPush


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Intake:
    store: StateStore
    cache: ContextCache
    queue: GenerationQueue
    push: ClientPush
    callback_url: str
    max_message_chars: int
    clock: Callable[[], datetime] = field(default=_utc_now)
    # Tenant settings kept across invocations (None: the handoff settings are read for every message).
    tenant_configs: TenantConfigCache | None = None
    # Counts visitors' frames against ``limits`` before anything is stored (None: no limits).
    limiter: RateLimiter | None = None
    limits: ChatLimits = field(default_factory=ChatLimits)
    # Monthly questions and tokens per tenant (shared/chat/quotas.py; None: not counted).
    usage: UsageLedger | None = None
    default_quota: MonthlyQuota = field(default_factory=MonthlyQuota)
    # Issues the visitor's token (the ``session`` action); None: this deployment has no token secret.
    visitor_tokens: VisitorTokens | None = None
    # Whether a tenant is suspended (cached by the caller); None: not checked.
    tenant_suspended: Callable[[str], bool] | None = None

    def handle(self, connection_id: str, body: str | None) -> None:
        """Answer the frame; typed errors become error frames on the sender's connection."""
        notifier = Notifier(self.store, self.push)
        handoff = Handoff(self.store, notifier, clock=self.clock)
        client_message_id: str | None = None
        requested_soon: Future[Conversation | None] | None = None
        try:
            frame = parse_client_frame(body, self.max_message_chars)
            client_message_id = getattr(frame, "client_message_id", None)
            # A message that names its conversation (the widget's, after the first) reads it while the
            # connection is read; ownership is checked once both are in.
            requested_soon = (
                IO.submit(self.store.get_conversation, frame.conversation_id)
                if isinstance(frame, SendMessage) and frame.conversation_id
                else None
            )
            connection = self.store.get_connection(connection_id)
            if connection is None:
                raise BadRequest("this connection is not registered; reconnect and try again")
            logger.append_keys(tenant_id=connection.tenant_id)
            if self.tenant_suspended is not None and self.tenant_suspended(connection.tenant_id):
                self._end_suspended(connection)
                return
            if connection.role == "agent":
                if isinstance(frame, SendMessage | RequestHuman | Feedback | LeaveMessage | Session):
                    raise Forbidden(f"{frame.action!r} is a visitor action; agents send agentMessage")
                AgentDesk(self.store, self.cache, notifier, handoff).handle(connection, frame)
                return
            if not isinstance(frame, VisitorFrame):
                raise Forbidden(f"{frame.action!r} is an agent action")
            if self.limiter is not None:
                charges = self.limits.for_frame(
                    tenant_id=connection.tenant_id,
                    visitor_id=connection.visitor_id,
                    connection_id=connection_id,
                    action=frame.action,
                    text=frame.text if isinstance(frame, SendMessage) else None,
                    source_ip=connection.source_ip,
                )
                self.limiter.spend(charges)
            if isinstance(frame, SendMessage) and self.usage is not None:
                quota = self._quota(connection.tenant_id)
                self.usage.count_question(connection.tenant_id, month_of(self.clock()), quota)
            visitors = VisitorDesk(
                self.store,
                self.cache,
                self.queue,
                self.push,
                self.callback_url,
                tenant_configs=self.tenant_configs,
                visitor_tokens=self.visitor_tokens,
            )
            visitors.handle(connection, frame, notifier, handoff, requested_soon)
        except KefuError as exc:
            logger.info("frame refused", extra={"code": exc.code, "reason": exc.message})
            error = ErrorFrame(
                code=exc.code,
                message=exc.message,
                client_message_id=client_message_id,
                retry_after_ms=getattr(exc, "retry_after_ms", None),
            )
            self.push.send(connection_id, error.to_json())
        finally:
            if requested_soon is not None:  # a refused frame's read: finish it before Lambda freezes
                wait([requested_soon])

    def _quota(self, tenant_id: str) -> MonthlyQuota:
        """The tenant's plan (TenantConfig.quota) over the deployment's defaults."""
        config = self.tenant_configs.get(tenant_id) if self.tenant_configs is not None else None
        return quota_for(config.quota if config is not None else None, self.default_quota)

    def _end_suspended(self, connection: Connection) -> None:
        """A suspended tenant's connection: forgotten, told why, closed."""
        self.store.delete_connection(connection.connection_id)
        self.push.send(connection.connection_id, SessionEnded(reason="suspended").to_json())
        self.push.close(connection.connection_id)
