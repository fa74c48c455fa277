"""Sending an answer or an agent's reply through a channel, with every platform refusal turned into an
outcome the console can show (a closed window, a session WeCom's staff holds) instead of an exception
that would make the job retry a message the platform will keep refusing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from shared.channels.base import (
    Channel,
    OutboundCitation,
    OutboundKind,
    SessionStateRefused,
    WindowClosed,
    WindowState,
)

# "not_delivered": the platform could not be reached or refused for another reason (the caller raises).
Status = Literal["sent", "partial", "window_closed", "session_elsewhere", "not_delivered"]


@dataclass(frozen=True)
class SendOutcome:
    status: Status
    parts_sent: int
    parts_total: int
    reason: str
    window: WindowState


def send_answer(
    channel: Channel,
    customer_id: str,
    text: str,
    citations: list[OutboundCitation] | None = None,
    kind: OutboundKind = "answer",
) -> SendOutcome:
    """Raises only ``ChannelError`` for failures worth retrying (platform unreachable, token refused)."""
    try:
        report = channel.send(customer_id, text, citations, kind)
    except WindowClosed as exc:
        return SendOutcome("window_closed", 0, 0, exc.reason, channel.window(customer_id))
    except SessionStateRefused as exc:
        return SendOutcome("session_elsewhere", 0, 0, exc.reason, channel.window(customer_id))
    window = channel.window(customer_id)
    if report.complete:
        return SendOutcome("sent", report.parts_sent, report.parts_total, "", window)
    reason = window.reason or "the platform stopped taking messages before the answer was complete"
    return SendOutcome("partial", report.parts_sent, report.parts_total, reason, window)
