"""Each platform message is handled once: WeChat retries a message three times when kefu is slow
(5 s), a company's backend may resend, and WeCom's pull can overlap a retried callback. The first
sighting of ``(channel, customer, platform message id)`` wins, atomically, across containers (the
customer is in the key because an app's message ids need only be unique per user)."""

from __future__ import annotations

from shared.channels.base import VisitorMessage
from shared.channels.state import ChannelState

# Longer than any platform retries (WeChat: within a minute; a company's backend: its own policy).
SEEN_TTL_SECONDS = 7 * 24 * 3600.0


def first_sighting(state: ChannelState, message: VisitorMessage) -> bool:
    """True the first time this platform message id is seen on this channel; False for a retry."""
    return state.put_if_absent(_key(message), {"customer": message.customer_id}, SEEN_TTL_SECONDS)


def forget(state: ChannelState, message: VisitorMessage) -> None:
    """Undo a first sighting whose message could not be stored, so the platform's retry is taken."""
    state.delete(_key(message))


def _key(message: VisitorMessage) -> str:
    return f"chan:seen:{message.channel_id}:{message.customer_id}:{message.platform_message_id}"
