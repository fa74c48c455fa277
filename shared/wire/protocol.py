"""Wire protocol v1 between the chat widget / agent console and the engine (docs/protocol.md)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter, ValidationError

from shared.config_section import ConfigSection
from shared.errors import BadRequest, MessageTooLarge, UnknownAction, describe_validation_error
from shared.state.records import Citation

# Bytes of JSON accepted before parsing: the 8 KB text limit plus room for the envelope.
MAX_FRAME_BYTES = 16 * 1024

ClientMessageId = Annotated[str, Field(min_length=8, max_length=64, pattern=r"^[A-Za-z0-9._:-]+$")]
ConversationId = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]
MessageId = Annotated[str, Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9._-]+$")]
AgentId = Annotated[str, Field(max_length=64, pattern=r"^[A-Za-z0-9_-]+$")]


class _Frame(ConfigSection):
    def to_json(self) -> str:
        return self.model_dump_json(by_alias=True, exclude_none=True)


# Any frame (fan-out helpers take one).
Frame = _Frame


# --- client -> server: visitors ---


class Session(_Frame):
    """Ask who this connection is (the widget sends it on opening): answered with ``session``."""

    action: Literal["session"]


class SendMessage(_Frame):
    action: Literal["sendMessage"]
    client_message_id: ClientMessageId
    text: str = Field(min_length=1)
    conversation_id: ConversationId | None = None


class RequestHuman(_Frame):
    """The widget's "talk to a human" button."""

    action: Literal["requestHuman"]
    conversation_id: ConversationId | None = None


class Feedback(_Frame):
    """👍 / 👎 on a bot answer."""

    action: Literal["feedback"]
    message_id: MessageId
    rating: Literal["up", "down"]
    conversation_id: ConversationId | None = None


class LeaveMessage(_Frame):
    """Contact details (and a message) left when nobody can chat now: stored as the agents' ticket."""

    action: Literal["leaveMessage"]
    contact: str = Field(min_length=3, max_length=200)
    name: str | None = Field(default=None, max_length=100)
    text: str | None = Field(default=None, max_length=2000)
    conversation_id: ConversationId | None = None


# --- client -> server: visitors and agents ---


class Typing(_Frame):
    action: Literal["typing"]
    typing: bool
    conversation_id: ConversationId | None = None


class Read(_Frame):
    """The sender has seen everything up to and including ``message_id``."""

    action: Literal["read"]
    message_id: MessageId
    conversation_id: ConversationId | None = None


class History(_Frame):
    """Messages of a conversation, newest page first; also attaches a visitor's new connection to it."""

    action: Literal["history"]
    conversation_id: ConversationId | None = None
    before: MessageId | None = None
    after: MessageId | None = None
    limit: int = Field(default=50, ge=1, le=100)


# --- client -> server: agents ---


class AgentSync(_Frame):
    action: Literal["agentSync"]


class Accept(_Frame):
    action: Literal["accept"]
    conversation_id: ConversationId


class AgentMessage(_Frame):
    action: Literal["agentMessage"]
    conversation_id: ConversationId
    client_message_id: ClientMessageId
    text: str = Field(min_length=1)


class Note(_Frame):
    """An internal note: stored with the conversation, shown to agents only."""

    action: Literal["note"]
    conversation_id: ConversationId
    client_message_id: ClientMessageId
    text: str = Field(min_length=1)


class Transfer(_Frame):
    action: Literal["transfer"]
    conversation_id: ConversationId
    agent_id: AgentId


class Resolve(_Frame):
    action: Literal["resolve"]
    conversation_id: ConversationId


class ReturnToBot(_Frame):
    action: Literal["returnToBot"]
    conversation_id: ConversationId


class SetPresence(_Frame):
    action: Literal["setPresence"]
    status: Literal["online", "away"]


class Heartbeat(_Frame):
    """The console's periodic "still here": keeps the connection from idling out and lets the server
    check the tenant's queue for visitors waiting past the limit. No answer."""

    action: Literal["heartbeat"]


class CloseTicket(_Frame):
    """An agent dealt with a visitor's left message."""

    action: Literal["closeTicket"]
    conversation_id: ConversationId


VisitorFrame = SendMessage | RequestHuman | Feedback | LeaveMessage | Typing | Read | History | Session
AgentFrame = (
    AgentSync
    | Accept
    | AgentMessage
    | Note
    | Transfer
    | Resolve
    | ReturnToBot
    | SetPresence
    | CloseTicket
    | Heartbeat
    | Typing
    | Read
    | History
)
# Every frame a client may send, told apart by ``action`` (Typing, Read and History are in both sets).
ClientFrame = Annotated[VisitorFrame | AgentFrame, Field(discriminator="action")]
VISITOR_ACTIONS = (
    "sendMessage",
    "requestHuman",
    "feedback",
    "leaveMessage",
    "typing",
    "read",
    "history",
    "session",
)
AGENT_ACTIONS = (
    "agentSync",
    "accept",
    "agentMessage",
    "note",
    "transfer",
    "resolve",
    "returnToBot",
    "setPresence",
    "closeTicket",
    "heartbeat",
    "typing",
    "read",
    "history",
)
KNOWN_ACTIONS = tuple(dict.fromkeys((*VISITOR_ACTIONS, *AGENT_ACTIONS)))
_TEXT_ACTIONS = ("sendMessage", "agentMessage", "note")
_CLIENT_FRAME: TypeAdapter[ClientFrame] = TypeAdapter(ClientFrame)


def parse_client_frame(body: str | None, max_chars: int) -> ClientFrame:
    """Validate a raw frame; raises a BadRequest subclass whose message says what is wrong."""
    if body is None or not body.strip():
        raise BadRequest("empty frame: send a JSON object with an 'action'")
    if len(body.encode()) > MAX_FRAME_BYTES:
        raise MessageTooLarge(f"frame is larger than {MAX_FRAME_BYTES} bytes")
    try:
        raw: Any = json.loads(body)
    except ValueError:
        raise BadRequest("frame is not valid JSON") from None
    except RecursionError:  # the decoder's nesting limit (a few KB of "[[[[…" reach it)
        raise BadRequest("frame is nested too deeply") from None
    if not isinstance(raw, dict):
        raise BadRequest("frame must be a JSON object")
    action = raw.get("action")
    if action not in KNOWN_ACTIONS:
        raise UnknownAction(f"unknown action {action!r}; expected one of {', '.join(KNOWN_ACTIONS)}")
    text = raw.get("text")
    if action in _TEXT_ACTIONS and isinstance(text, str) and len(text) > max_chars:
        raise MessageTooLarge(f"text is {len(text)} characters; the limit is {max_chars}")
    try:
        frame = _CLIENT_FRAME.validate_python(raw)
    except ValidationError as exc:
        raise BadRequest(describe_validation_error(exc, whole="frame", most=3, hide=KNOWN_ACTIONS)) from None
    if isinstance(frame, SendMessage | AgentMessage | Note) and not frame.text.strip():
        raise BadRequest("text: must not be blank")
    if isinstance(frame, LeaveMessage) and len(frame.contact.strip()) < 3:
        raise BadRequest("contact: an e-mail address or phone number is required")
    return frame


# --- server -> client: answers (visitors) ---


class Ack(_Frame):
    type: Literal["ack"] = "ack"
    client_message_id: str
    message_id: str
    conversation_id: str


class AnswerDelta(_Frame):
    type: Literal["answer.delta"] = "answer.delta"
    conversation_id: str
    message_id: str
    seq: int
    text: str


class AnswerEnd(_Frame):
    type: Literal["answer.end"] = "answer.end"
    conversation_id: str
    message_id: str
    text: str
    citations: list[Citation]
    # False: the model failed after the answer had started; ``text`` is what was sent, cut.
    complete: bool = True


class AnswerCancelled(_Frame):
    """A person took the conversation over while this answer streamed: drop what was shown of it."""

    type: Literal["answer.cancelled"] = "answer.cancelled"
    conversation_id: str
    message_id: str


class ErrorFrame(_Frame):
    type: Literal["error"] = "error"
    code: str
    message: str
    client_message_id: str | None = None
    # rate_limited: when the window that refused the frame turns
    retry_after_ms: int | None = None
    # Errors about a visitor message's answer (``model_unavailable``) name it: the conversation,
    # the answer's id (the question's id + ".a", as answer frames carry) and the question's id.
    conversation_id: str | None = None
    message_id: str | None = None
    question_id: str | None = None
    # True: asking again may work (the widget offers a retry button).
    retryable: bool | None = None
    # What to show the visitor (the tenant's `model.unavailableText`); absent: the client's own text.
    text: str | None = None


class SessionEnded(_Frame):
    """The server is about to close this agent connection: its key was rotated or the agent disabled.
    The console asks for a key instead of reconnecting."""

    type: Literal["session.ended"] = "session.ended"
    reason: Literal["key_rotated", "disabled", "suspended"]


class SessionFrame(_Frame):
    """Who this visitor connection is: the widget keeps ``visitorToken`` and presents it (``token=``)
    on every reconnect, which is the only way to come back as the same visitor."""

    type: Literal["session"] = "session"
    visitor_id: str
    visitor_token: str


# --- server -> client: people ---


class AgentRef(_Frame):
    agent_id: str
    name: str


class ConversationStatusFrame(_Frame):
    """Who owns the conversation now (visitors)."""

    type: Literal["conversation.status"] = "conversation.status"
    conversation_id: str
    status: Literal["bot", "queued", "assigned", "resolved"]
    agent: AgentRef | None = None
    waiting_since: int | None = None


class Notice(_Frame):
    """Something to tell the visitor, already in their language.

    ``code``: queued, offline, no_agents, still_waiting, message_left, unavailable, transferred, resolved,
    returned_to_bot, already_waiting. ``leave_message``: offer the visitor to leave contact details."""

    type: Literal["notice"] = "notice"
    conversation_id: str
    code: str
    text: str
    agent: AgentRef | None = None
    next_open_at: int | None = None
    leave_message: bool | None = None


class AgentJoined(_Frame):
    type: Literal["agent.joined"] = "agent.joined"
    conversation_id: str
    agent: AgentRef


class _StoredMessageFrame(_Frame):
    """A message as stored (each subclass narrows ``type``; it stays the first key on the wire)."""

    type: str
    conversation_id: str
    message_id: str
    text: str
    created_at: int


class _AgentWritten(_StoredMessageFrame):
    agent: AgentRef
    client_message_id: str | None = None


class AgentMessageFrame(_AgentWritten):
    """An agent's message (to the visitor, and to the agent's other tabs)."""

    type: Literal["agent.message"] = "agent.message"


class TypingFrame(_Frame):
    type: Literal["typing"] = "typing"
    conversation_id: str
    sender: Literal["visitor", "agent"] = Field(alias="from")
    typing: bool
    name: str | None = None


class ReadFrame(_Frame):
    type: Literal["read"] = "read"
    conversation_id: str
    by: Literal["visitor", "agent"]
    message_id: str


class FeedbackSaved(_Frame):
    type: Literal["feedback.saved"] = "feedback.saved"
    conversation_id: str
    message_id: str
    rating: Literal["up", "down"]


class MessageOut(_Frame):
    """One message in a ``history`` frame."""

    message_id: str
    role: Literal["visitor", "bot", "agent", "note", "event"]
    text: str
    created_at: int
    client_message_id: str | None = None
    citations: list[Citation] | None = None
    agent: AgentRef | None = None
    event: str | None = None
    feedback: str | None = None
    # Bot answers cut by a model failure: false (absent for complete answers).
    complete: bool | None = None


class ChannelOut(_Frame):
    """A visitor on a messaging channel: its kind (wechat_oa, wecom_kf, webhook) and their platform id."""

    kind: str
    channel_id: str
    customer_id: str


class ChannelNoticeOut(_Frame):
    """The platform's last refusal to deliver (``window_closed``, ``session_elsewhere``)."""

    status: str
    reason: str
    at: int


class VisitorInfo(_Frame):
    # What agents call the visitor ("Visitor 3F2A"); the id itself is not shown to agents.
    alias: str
    page: str | None = None
    language: str | None = None
    first_seen: int
    # A visitor from a messaging channel (WeChat, WeCom, an app) rather than the widget.
    channel: ChannelOut | None = None
    channel_notice: ChannelNoticeOut | None = None


class ConversationSummary(_Frame):
    """A conversation as agents list it."""

    conversation_id: str
    status: Literal["bot", "queued", "assigned", "resolved"]
    visitor: VisitorInfo
    updated_at: int
    waiting_since: int | None = None
    reason: str | None = None
    assignee: AgentRef | None = None
    preview: str | None = None
    visitor_read_until: str | None = None
    agent_read_until: str | None = None


class TicketOut(_Frame):
    """A visitor's left contact details and message, as agents list them."""

    conversation_id: str
    contact: str
    name: str | None = None
    text: str | None = None
    created_at: int
    status: Literal["open", "closed"]
    visitor: VisitorInfo


class HistoryFrame(_Frame):
    type: Literal["history"] = "history"
    conversation_id: str
    status: Literal["bot", "queued", "assigned", "resolved"]
    messages: list[MessageOut]
    has_more: bool
    agent: AgentRef | None = None
    # Read watermarks: the visitor sees "read" ticks from agentReadUntil, the agent from visitorReadUntil.
    visitor_read_until: str | None = None
    agent_read_until: str | None = None
    # Agents only: the conversation with the visitor's details.
    conversation: ConversationSummary | None = None


# --- server -> client: agents ---


class AgentPresence(_Frame):
    agent_id: str
    name: str
    presence: Literal["online", "away", "offline"]
    load: int
    capacity: int


class CannedReplyOut(_Frame):
    title: str
    text: str


class AgentState(_Frame):
    """Everything the console shows, sent in answer to ``agentSync``."""

    type: Literal["agent.state"] = "agent.state"
    agent: AgentPresence
    queue: list[ConversationSummary]
    mine: list[ConversationSummary]
    agents: list[AgentPresence]
    canned_replies: list[CannedReplyOut]
    open_now: bool
    # Open tickets (contact details left by visitors nobody could chat with), oldest first.
    tickets: list[TicketOut] = []


class TicketsUpdated(_Frame):
    type: Literal["tickets.updated"] = "tickets.updated"
    tickets: list[TicketOut]


class QueueRemoval(_Frame):
    conversation_id: str
    # The conversation's updatedAt after it left the queue: an ``added`` entry older than this that
    # arrives late (two changes in two functions at once) is stale.
    updated_at: int


class QueueUpdated(_Frame):
    """What changed in the tenant's queue (the whole queue comes with ``agent.state``): sending the
    whole queue to every agent on every change made a handoff flood quadratic."""

    type: Literal["queue.updated"] = "queue.updated"
    added: list[ConversationSummary] = []
    removed: list[QueueRemoval] = []


class ConversationAssigned(_Frame):
    type: Literal["conversation.assigned"] = "conversation.assigned"
    conversation: ConversationSummary
    by: Literal["auto", "accept", "transfer"]


class ConversationUpdated(_Frame):
    type: Literal["conversation.updated"] = "conversation.updated"
    conversation: ConversationSummary


class VisitorMessageFrame(_StoredMessageFrame):
    type: Literal["visitor.message"] = "visitor.message"


class NoteFrame(_AgentWritten):
    """An agent's internal note: agents only, never the visitor."""

    type: Literal["note"] = "note"


class PresenceFrame(_Frame):
    type: Literal["presence"] = "presence"
    agent: AgentPresence
