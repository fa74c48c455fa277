"""A channel customer's message becomes a visitor message through the same intake as the widget's:
the tenant's state, the rate limits, the monthly quota, the conversation (one per channel and
customer), the handoff triggers ("转人工"), the idempotent store and the generate job.

The customer is a "connection" named after the channel and their platform id (wire/push.py), kept as
long as their conversation, so every frame for them — the answer, an agent's reply, a notice — goes
out through the channel (shared/channels/push.py). The platform's message id becomes the client
message id, so a platform retry that gets past the first-sighting check is still stored once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, replace

from shared.channels.base import ChannelError, PullNotice, VisitorMessage
from shared.channels.directory import ChannelRecord
from shared.chat.intake import Intake
from shared.observability import logger
from shared.state.records import ChannelRef, Connection, now_ms
from shared.state.store import StateStore
from shared.wire.jobs import ChannelPullJob, GenerationQueue
from shared.wire.push import ClientPush, channel_connection_id

# The language of the notices a customer gets (handoff, waiting): WeChat's users write Chinese.
_LANGUAGES = {"wechat_oa": "zh-CN", "wecom_kf": "zh-CN"}
# The customer's "connection" is rewritten this often at most (it keeps it from expiring).
_REFRESH_MS = 24 * 3600 * 1000


class NotQueued(ChannelError):
    """The message was stored but its answer could not be queued: the platform's retry queues it."""


class _RefuseRetry(ClientPush):
    """The intake's push for one channel message: a ``retry`` error (stored, not queued) becomes an
    exception, so the platform is answered 5xx and sends the message again."""

    def __init__(self, push: ClientPush) -> None:
        self._push = push

    def send(self, connection_id: str, frame: str) -> None:
        if '"code":"retry"' in frame and json.loads(frame).get("code") == "retry":
            raise NotQueued("the message was stored but its answer could not be queued")
        self._push.send(connection_id, frame)

    def close(self, connection_id: str) -> None:
        self._push.close(connection_id)


def client_message_id(record: ChannelRecord, message: VisitorMessage) -> str:
    """The platform's id in the widget's id alphabet (ids of any length or characters become a hash)."""
    digest = hashlib.sha256(f"{record.channel_id}:{message.platform_message_id}".encode()).hexdigest()
    return f"ch.{digest[:40]}"


@dataclass(frozen=True)
class ChannelDesk:
    store: StateStore
    intake: Intake
    queue: GenerationQueue

    def deliver(self, record: ChannelRecord, message: VisitorMessage) -> None:
        """Store the message as the customer's (their conversation, started if needed) and queue its answer
        or pass it to the agent who holds the conversation. Raises when it was not taken (retry)."""
        if not message.text.strip():
            # A follow, a scan, an image or a location: it renewed the reply window (inbound.receive),
            # but there is no question to store or answer (media messages are not read yet).
            logger.info("channel message without text", extra={"msg_type": message.msg_type})
            return
        connection_id = channel_connection_id(record.channel_id, message.customer_id)
        self._keep_connection(record, message, connection_id)
        frame = {"action": "sendMessage", "clientMessageId": client_message_id(record, message), "text": message.text}
        replace(self.intake, push=_RefuseRetry(self.intake.push)).handle(connection_id, json.dumps(frame))

    def queue_pull(self, record: ChannelRecord, notice: PullNotice) -> None:
        job = ChannelPullJob(
            tenant_id=record.tenant_id, channel_id=record.channel_id, open_kfid=notice.open_kfid, token=notice.token
        )
        self.queue.enqueue(job)

    def _keep_connection(self, record: ChannelRecord, message: VisitorMessage, connection_id: str) -> None:
        existing = self.store.get_connection(connection_id)
        now = now_ms()
        same_tenant = existing is not None and existing.tenant_id == record.tenant_id
        if same_tenant and existing is not None and now - existing.connected_at < _REFRESH_MS:
            return
        ref = ChannelRef(kind=record.kind, channel_id=record.channel_id, customer_id=message.customer_id)
        customer = Connection(
            connection_id=connection_id,
            tenant_id=record.tenant_id,
            visitor_id=channel_visitor_id(ref),
            conversation_id=existing.conversation_id if same_tenant and existing else None,
            connected_at=now,
            domain_name="channel",
            stage=record.kind,
            language=_LANGUAGES.get(record.kind),
            channel=ref,
        )
        if existing is None:
            # Two first messages at once: the one that creates the record wins, the other uses it.
            self.store.add_connection(customer)
        else:  # a daily rewrite keeps it from expiring while the customer writes
            self.store.put_connection(customer)


def channel_visitor_id(ref: ChannelRef) -> str:
    """One visitor per channel and customer (a hash: platform ids may be long or hold any character)."""
    digest = hashlib.sha256(f"{ref.channel_id}:{ref.customer_id}".encode()).hexdigest()
    return f"v_ch{digest[:30]}"
