"""The channels function's use case: one platform request for one channel, by the id in its URL.

Find the channel (unknown or disabled: ``ChannelNotFound``), build its adapter with the tenant's
secrets (kept for ``adapter_ttl_seconds`` by a warm container, so a burst of messages reads Secrets
Manager once), then ``inbound.receive``: verify, read, keep first sightings, deliver each new message,
queue pulls, and return what to answer the platform at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shared.channels.base import Acknowledgement, Channel, ChannelNotFound, InboundRequest, PullNotice, VisitorMessage
from shared.channels.directory import ChannelDirectory, ChannelRecord
from shared.channels.inbound import InboundOutcome, process_pull, receive
from shared.channels.state import ChannelState
from shared.wire.jobs import ChannelPullJob

# What becomes of a new message: stored as a visitor message and its answer queued (shared/channels/desk.py).
DeliverTo = Callable[[ChannelRecord, VisitorMessage], None]
# A pull notice becomes a job (WeCom: the job runs ``sync_msg``).
QueuePull = Callable[[ChannelRecord, PullNotice], None]
AdapterFactory = Callable[[ChannelRecord], Channel]


@dataclass
class ChannelAdapters:
    """Adapters of the channels this container has served, rebuilt when the record changes or after
    ``ttl_seconds`` (a rotated secret is picked up within that time)."""

    build: AdapterFactory
    ttl_seconds: float = 300.0
    clock: Callable[[], float] = time.monotonic
    _built: dict[str, tuple[float, float, Channel]] = field(default_factory=dict)

    def for_record(self, record: ChannelRecord) -> Channel:
        now = self.clock()
        cached = self._built.get(record.channel_id)
        if cached is not None and cached[0] == record.updated_at and now - cached[1] < self.ttl_seconds:
            return cached[2]
        channel = self.build(record)
        if len(self._built) > 256:
            self._built.clear()
        self._built[record.channel_id] = (record.updated_at, now, channel)
        return channel


@dataclass(frozen=True)
class ChannelInbox:
    directory: ChannelDirectory
    state: ChannelState
    adapters: ChannelAdapters
    deliver: DeliverTo
    queue_pull: QueuePull

    def record(self, channel_id: str) -> ChannelRecord:
        record = self.directory.get(channel_id) if channel_id else None
        if record is None or not record.enabled:
            raise ChannelNotFound(f"no enabled channel {channel_id!r}")
        return record

    def receive(self, channel_id: str, request: InboundRequest) -> Acknowledgement:
        """Raises ``ChannelNotFound``, ``SignatureInvalid`` or ``MalformedRequest`` before anything is
        stored; any other failure means "not taken" (the platform retries)."""
        record = self.record(channel_id)
        channel = self.adapters.for_record(record)

        def deliver(message: VisitorMessage) -> None:
            self.deliver(record, message)

        def enqueue_pull(notice: PullNotice) -> None:
            self.queue_pull(record, notice)

        return receive(channel, request, self.state, deliver, enqueue_pull).ack

    def pull(self, job: ChannelPullJob) -> InboundOutcome:
        """The pull job: fetch what the platform announced and deliver each new message once."""
        record = self.record(job.channel_id)
        channel = self.adapters.for_record(record)
        notice = PullNotice(channel_id=job.channel_id, open_kfid=job.open_kfid, token=job.token)
        return process_pull(channel, notice, self.state, lambda message: self.deliver(record, message))
