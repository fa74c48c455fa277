"""The channel port: what every messaging platform (WeChat Official Account, WeChat Customer Service,
a company's own app) must do for kefu, whatever its wire format.

An adapter verifies an inbound HTTP request, answers the platform within its deadline, turns the
request into visitor messages that carry the platform's own message id (the key that makes retries
idempotent), sends an answer back through the platform's API and says whether the customer's reply
window is still open. Nothing here streams: an answer goes out whole (split under the platform's limit).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import ClassVar, Literal


class ChannelError(Exception):
    """A channel operation failed; ``reason`` is safe to show to the tenant."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SignatureInvalid(ChannelError):
    """The request is not from the platform (bad or missing signature, stale timestamp, bad cipher text)."""


class ChannelNotFound(ChannelError):
    """No enabled channel has this id (unknown, deleted or disabled): the platform is told 404."""


class MalformedRequest(ChannelError):
    """The request is signed but its body cannot be read (not XML/JSON, missing fields)."""


class WindowClosed(ChannelError):
    """The platform will not take more messages for this customer now (48-hour window or quota used up)."""


class SessionStateRefused(ChannelError):
    """WeCom refused the send because of the session's state (95018: e.g. a human in WeCom serves it)."""


class PlatformError(ChannelError):
    """The platform answered with an error code kefu has no specific handling for."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"platform error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


@dataclass(frozen=True)
class InboundRequest:
    """An HTTP request as the channels function receives it (already base64-decoded)."""

    method: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""


@dataclass(frozen=True)
class Acknowledgement:
    """What to answer the platform at once (WeChat: ``success`` within 5 s)."""

    status: int = 200
    body: str = "success"
    content_type: str = "text/plain; charset=utf-8"


# ``VisitorMessage.extra["event"]`` of an event that says the platform's own staff ended the customer's
# session (WeCom's reception servicers): kefu's bot takes the conversation back.
STAFF_ENDED_SESSION = "staff_ended_session"


@dataclass(frozen=True)
class VisitorMessage:
    """One customer message, in kefu's terms.

    ``platform_message_id`` is the platform's id (WeChat ``MsgId``, WeCom ``msgid``, the app's
    ``clientMessageId``): the same id seen twice is the same message, answered once.
    ``opens_window`` says what the message does to the reply window (a typed message opens the long
    one; a menu click or follow, the short one).
    """

    channel_id: str
    customer_id: str
    platform_message_id: str
    text: str
    sent_at: float
    msg_type: str = "text"
    opens_window: Literal["message", "event", "none"] = "message"
    conversation_hint: str | None = None  # the app's own conversation id (webhook channel)
    extra: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PullNotice:
    """The platform only said messages are waiting (WeCom ``kf_msg_or_event``); the job pulls them."""

    channel_id: str
    open_kfid: str
    token: str


@dataclass(frozen=True)
class WindowState:
    """Whether kefu may still message this customer, and how many messages are left."""

    open: bool
    expires_at: float | None  # None: the channel has no window (webhook)
    remaining: int | None  # None: no quota
    reason: str = ""


@dataclass(frozen=True)
class SendReport:
    parts_sent: int
    parts_total: int
    platform_ids: list[str] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.parts_sent == self.parts_total


# What an outbound message is: the bot's answer, an agent's reply, or a notice (queued, resolved…).
# Platforms that only take text ignore it; the webhook channel sends it as the event's ``type``.
OutboundKind = Literal["answer", "agent_message", "notice"]


@dataclass(frozen=True)
class OutboundCitation:
    """A source shown under an answer: a short title and, where the document has one, a link."""

    title: str
    url: str | None = None


class Channel(ABC):
    """One configured channel of one tenant. Adapters live side by side in this package
    (``wechat_oa.py``, ``wecom_kf.py``, ``webhook.py``); a new kind is one new file (see __init__)."""

    kind: ClassVar[str]
    # How long the platform waits for the HTTP answer before it retries.
    ack_deadline_seconds: ClassVar[float] = 5.0

    def __init__(self, channel_id: str) -> None:
        self.channel_id = channel_id

    @abstractmethod
    def verify(self, request: InboundRequest) -> None:
        """Raise ``SignatureInvalid`` unless the platform signed this request."""

    @abstractmethod
    def acknowledge(self, request: InboundRequest) -> Acknowledgement:
        """The immediate answer (after ``verify``): the URL handshake's echo, or a plain receipt."""

    @abstractmethod
    def parse(self, request: InboundRequest) -> list[VisitorMessage | PullNotice]:
        """Visitor messages (or a pull notice) in a verified request; ``MalformedRequest`` if unreadable."""

    def customer_acted(self, message: VisitorMessage) -> None:
        """Note a received message (it opens or renews the customer's reply window where there is one)."""
        return None

    def collect(self, notice: PullNotice) -> list[VisitorMessage]:
        """Fetch the messages a pull notice announced (only pull-based platforms override this)."""
        return []

    @abstractmethod
    def send(
        self,
        customer_id: str,
        text: str,
        citations: list[OutboundCitation] | None = None,
        kind: OutboundKind = "answer",
    ) -> SendReport:
        """Deliver an answer, an agent's reply or a notice (``kind``) whole, split under the platform's limit.
        Raises ``WindowClosed`` when the platform will not take it."""

    @abstractmethod
    def window(self, customer_id: str) -> WindowState:
        """The customer's reply window as kefu last knew it."""

    def hand_off(self, customer_id: str) -> str | None:
        """A handoff to people, where the channel is set to give it to the platform's own staff (WeCom's
        reception staff): do it and say who took the customer. None: kefu's agents take it (the default)."""
        return None
