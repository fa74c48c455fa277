"""What the channels function does with one platform request, whatever the platform: verify it, read
it, keep only first sightings of each platform message id, note each new message in the customer's
reply window and hand it on (store it as a visitor message and queue its job: ``deliver``, injected),
and answer the platform at once.

No message is lost: if ``deliver`` fails, the first sighting is forgotten and the error goes up, so
the edge answers 5xx and the platform's retry is taken. No message is answered twice: a retry that
arrives after a successful delivery is only acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from shared.channels.base import Acknowledgement, Channel, InboundRequest, PullNotice, VisitorMessage
from shared.channels.dedupe import first_sighting, forget
from shared.channels.state import ChannelState

Deliver = Callable[[VisitorMessage], None]
EnqueuePull = Callable[[PullNotice], None]


@dataclass
class InboundOutcome:
    ack: Acknowledgement
    delivered: list[VisitorMessage] = field(default_factory=list)
    duplicates: list[VisitorMessage] = field(default_factory=list)
    pulls: list[PullNotice] = field(default_factory=list)


def receive(
    channel: Channel,
    request: InboundRequest,
    state: ChannelState,
    deliver: Deliver,
    enqueue_pull: EnqueuePull,
) -> InboundOutcome:
    """Raises ``SignatureInvalid`` / ``MalformedRequest`` (4xx at the edge) before anything is stored."""
    channel.verify(request)
    items = channel.parse(request)
    outcome = InboundOutcome(ack=channel.acknowledge(request))
    for item in items:
        if isinstance(item, PullNotice):
            enqueue_pull(item)
            outcome.pulls.append(item)
        else:
            _take(channel, item, state, deliver, outcome)
    return outcome


def process_pull(channel: Channel, notice: PullNotice, state: ChannelState, deliver: Deliver) -> InboundOutcome:
    """The job's half for pull-based platforms: fetch what the notice announced and take each message once."""
    outcome = InboundOutcome(ack=Acknowledgement())
    for message in channel.collect(notice):
        _take(channel, message, state, deliver, outcome)
    return outcome


def _take(
    channel: Channel, message: VisitorMessage, state: ChannelState, deliver: Deliver, outcome: InboundOutcome
) -> None:
    if not first_sighting(state, message):
        outcome.duplicates.append(message)
        return
    # The platform opened the customer's window when they wrote (whether or not kefu takes the message
    # now), and what delivering sends at once (a handoff notice) needs it open.
    channel.customer_acted(message)
    try:
        deliver(message)
    except BaseException:
        forget(state, message)
        raise
    outcome.delivered.append(message)
