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

from shared.channels.base import STAFF_ENDED_SESSION, ChannelError, PullNotice, VisitorMessage
from shared.channels.directory import ChannelRecord
from shared.channels.state import ChannelState
from shared.chat.intake import Intake
from shared.handoff.notify import Notifier, tell_assignee
from shared.handoff.service import Handoff
from shared.observability import logger
from shared.state.records import ChannelRef, Connection, Conversation, now_ms, transcript_event
from shared.state.store import StateStore
from shared.wire.jobs import ChannelPullJob, GenerationQueue
from shared.wire.push import ClientPush, channel_connection_id

# The language of the notices a customer gets (handoff, waiting): WeChat's users write Chinese.
_LANGUAGES = {"wechat_oa": "zh-CN", "wecom_kf": "zh-CN"}
# The customer's "connection" is rewritten this often at most (it keeps it from expiring).
_REFRESH_MS = 24 * 3600 * 1000
# Message types kefu reads; any other (image, voice without WeChat's recognition, video, file, location,
# link, card…) is a media message: the customer is told kefu reads text only, the agents see it arrived.
_READ_TYPES = frozenset({"text", "event"})
# A customer who sends several pictures in a row is told once in this time, not once per picture.
_MEDIA_TOLD_SECONDS = 600.0
_MEDIA_LABELS = {
    "image": "an image",
    "voice": "a voice message",
    "video": "a video",
    "shortvideo": "a video",
    "file": "a file",
    "location": "a location",
    "link": "a link",
}
# (language, people own the conversation) -> what the customer is told about a media message.
_MEDIA_REPLIES = {
    ("zh", False): "抱歉，我目前只能阅读文字，看不到图片、语音、视频、文件或位置。"
    "请直接输入您的问题，或回复“转人工”联系人工客服。",
    ("zh", True): "抱歉，这里目前只能传递文字，客服看不到您发送的图片、语音、视频、文件或位置。"
    "请用文字描述，客服会在这里回复您。",
    ("en", False): "Sorry, I can only read text: I cannot see images, voice messages, videos, files or locations. "
    "Please type your question, or type “talk to a person” to reach our team.",
    ("en", True): "Sorry, only text gets through here: our team cannot see images, voice messages, videos, files "
    "or locations. Please describe it in words and they will reply here.",
}


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


def media_reply(language: str | None, people_own_it: bool) -> str:
    """What a customer who sent a picture, a voice message, a file… is told (in their language)."""
    return _MEDIA_REPLIES[("zh" if (language or "").lower().startswith("zh") else "en", people_own_it)]


@dataclass(frozen=True)
class ChannelDesk:
    store: StateStore
    intake: Intake
    queue: GenerationQueue
    # Remembers which customers were just told that media is not read (None: told every time).
    state: ChannelState | None = None

    def deliver(self, record: ChannelRecord, message: VisitorMessage) -> None:
        """Store the message as the customer's (their conversation, started if needed) and queue its answer
        or pass it to the agent who holds the conversation. Raises when it was not taken (retry)."""
        if message.extra.get("event") == STAFF_ENDED_SESSION:
            self._staff_ended(record, message)
            return
        if not message.text.strip():
            if message.msg_type not in _READ_TYPES:
                self._media(record, message)
                return
            # A follow or a scan: it renewed the reply window (inbound.receive), but asks nothing.
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

    def _media(self, record: ChannelRecord, message: VisitorMessage) -> None:
        """A message kefu cannot read: the customer is told (once in a while) to type it or ask for a
        person, and the conversation, if there is one, records that it arrived (its agent is told)."""
        connection_id = channel_connection_id(record.channel_id, message.customer_id)
        connection = self._keep_connection(record, message, connection_id)
        conversation = self._conversation_of(connection)
        people_own_it = conversation is not None and conversation.status in ("queued", "assigned")
        logger.info("channel media message", extra={"msg_type": message.msg_type, "people": people_own_it})
        told_key = f"chan:media-told:{record.channel_id}:{message.customer_id}"
        if self.state is None or self.state.put_if_absent(told_key, {"at": now_ms()}, _MEDIA_TOLD_SECONDS):
            frame = {
                "type": "notice",
                "code": "media_not_read",
                "conversationId": conversation.conversation_id if conversation is not None else None,
                "text": media_reply(connection.language, people_own_it),
            }
            try:
                self.intake.push.send(connection_id, json.dumps(frame))
            except BaseException:
                if self.state is not None:  # not told: the platform's retry (or the job's) tells them
                    self.state.delete(told_key)
                raise
        if conversation is None:
            return  # nothing to show it in: the customer has not asked anything yet
        at = now_ms()
        label = _MEDIA_LABELS.get(message.msg_type, f"a {message.msg_type or 'media'} message")
        self.store.add_message(
            transcript_event(
                conversation.conversation_id,
                record.tenant_id,
                "channel_media",
                f"the customer sent {label} through {record.kind}; kefu reads text only, so it is not shown "
                "(they were asked to type it)",
                at,
            )
        )
        if people_own_it:
            self.store.set_preview(conversation.conversation_id, f"[{label}]", at)
            tell_assignee(self.store, self.intake.push, conversation.conversation_id)

    def _staff_ended(self, record: ChannelRecord, message: VisitorMessage) -> None:
        """The platform's own staff (WeCom's reception) ended the session kefu had handed to them: the
        conversation stops saying it is held there, and goes back to the bot if it still waits in
        kefu's queue (a kefu agent who took it meanwhile keeps it)."""
        connection = self.store.get_connection(channel_connection_id(record.channel_id, message.customer_id))
        conversation = self._conversation_of(connection) if connection is not None else None
        notice = conversation.channel_notice if conversation is not None else None
        if conversation is None or notice is None or notice.status != "session_elsewhere":
            # Not a session kefu knows the platform holds (kefu's own queue and agents are not touched).
            logger.info("platform session ended: not held there", extra={"channel_id": record.channel_id})
            return
        self.store.set_channel_notice(conversation.conversation_id, None)
        if conversation.status not in ("queued", "assigned"):
            return
        servicer = message.extra.get("servicer") or "their servicer"
        handoff = Handoff(self.store, Notifier(self.store, self.intake.push), clock=self.intake.clock)
        text = f"{record.kind}: the platform's reception staff ({servicer}) ended the session; back to the bot"
        if handoff.released_by_platform(conversation, text) is not None:
            return
        # A kefu agent holds it: they can write again (the platform no longer holds the session).
        at = now_ms()
        self.store.add_message(
            transcript_event(
                conversation.conversation_id,
                record.tenant_id,
                "channel_session_ended",
                f"{record.kind}: the platform's reception staff ({servicer}) ended their session",
                at,
            )
        )
        tell_assignee(self.store, self.intake.push, conversation.conversation_id)

    def _conversation_of(self, connection: Connection) -> Conversation | None:
        if connection.conversation_id is None:
            return None
        conversation = self.store.get_conversation(connection.conversation_id)
        if conversation is None or conversation.tenant_id != connection.tenant_id:
            return None
        return conversation

    def _keep_connection(self, record: ChannelRecord, message: VisitorMessage, connection_id: str) -> Connection:
        existing = self.store.get_connection(connection_id)
        now = now_ms()
        same_tenant = existing is not None and existing.tenant_id == record.tenant_id
        if same_tenant and existing is not None and now - existing.connected_at < _REFRESH_MS:
            return existing
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
        return customer


def channel_visitor_id(ref: ChannelRef) -> str:
    """One visitor per channel and customer (a hash: platform ids may be long or hold any character)."""
    digest = hashlib.sha256(f"{ref.channel_id}:{ref.customer_id}".encode()).hexdigest()
    return f"v_ch{digest[:30]}"
