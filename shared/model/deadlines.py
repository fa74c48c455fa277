"""Deadlines on a model's stream that hold whatever the provider does: a first piece by a point in
time, then no silence longer than ``between_seconds``, and the whole answer by ``end_by``.

A socket read timeout cannot express these (httpx fixes a response body's read timeout when the body
starts, and a server that trickles keep-alives never trips it), so the stream is read by a helper
thread and the caller waits on a queue with the deadline as its timeout. When a deadline passes the
caller gets a ``StreamDeadlineExceeded`` at once; the helper thread closes the stream as soon as its
blocked read returns (the adapters' socket read timeouts bound that).
"""

from __future__ import annotations

import contextvars
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from shared.errors import UpstreamError
from shared.model.answer_model import close_stream


class StreamDeadlineExceeded(UpstreamError):
    """No first piece, or no next piece, in time."""


@dataclass(frozen=True)
class StreamDeadlines:
    """``first_by`` and ``end_by`` are points on ``clock`` (time.monotonic); None: no limit."""

    first_by: float
    between_seconds: float
    end_by: float | None = None


_PIECE, _END, _FAILED = "piece", "end", "failed"


def within_deadlines(
    pieces: Iterator[str],
    deadlines: StreamDeadlines,
    *,
    who: str,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """``pieces`` as they come, or ``StreamDeadlineExceeded`` when a deadline passes first."""
    inbox: queue.SimpleQueue[tuple[str, object]] = queue.SimpleQueue()
    stop = threading.Event()

    def pump() -> None:
        try:
            for piece in pieces:
                inbox.put((_PIECE, piece))
                if stop.is_set():
                    return
            inbox.put((_END, None))
        except BaseException as exc:  # handed to the caller, who raises it
            inbox.put((_FAILED, exc))
        finally:
            close_stream(pieces)

    context = contextvars.copy_context()
    threading.Thread(target=context.run, args=(pump,), name="model-stream", daemon=True).start()
    started = clock()
    first = True
    last = started
    try:
        while True:
            if first:
                due, what = deadlines.first_by, f"{who} sent no text within {deadlines.first_by - started:.3g} s"
            else:
                due, what = last + deadlines.between_seconds, f"{who} went silent for {deadlines.between_seconds:g} s"
            if deadlines.end_by is not None and deadlines.end_by < due:
                due, what = deadlines.end_by, f"{who} did not finish the answer in time"
            try:
                kind, value = inbox.get(timeout=max(0.0, due - clock()))
            except queue.Empty:
                raise StreamDeadlineExceeded(what) from None
            if kind == _END:
                return
            if kind == _FAILED:
                assert isinstance(value, BaseException)
                raise value
            text = str(value)
            if text:
                first = False
                last = clock()
            yield text
    finally:
        stop.set()
