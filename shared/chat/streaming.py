"""Coalesces a model's small text pieces into fewer, larger ``answer.delta`` frames.

Every frame is one @connections call (~10-30 ms and a request against the API's rate limit), while a
model emits a token every few milliseconds. The coalescer sends the first piece at once (the visitor
sees the answer start), then at most one frame per ``flush_ms``: a frame goes out when ``flush_ms`` has
passed since the previous one, or when ``flush_chars`` characters are waiting, and at the end.

Rules it keeps:
- consecutive sends are at least ``flush_ms`` apart (so never more than 1000/flush_ms frames a second);
  when a frame is due early (size, end of stream) it waits out the rest of the interval;
- no frame is longer than ``flush_chars`` characters (API Gateway caps a frame at 32 KB);
- frames carry ``seq`` 0, 1, 2, ... in send order and their texts concatenate to the whole answer;
- if ``send`` fails (e.g. ``ConnectionGone``: the visitor left), the source iterator is closed at once,
  which cancels the model's HTTP request, and the error propagates;
- if the source fails after frames went out, the buffered rest is sent first, then the error
  propagates.

Pieces are pulled from the iterator, so buffered text is only checked for flushing when the next piece
arrives: a model that stalls mid-answer holds back at most what arrived since the last frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from shared.settings import Settings

SendFrame = Callable[[str, int], None]


class FrameCoalescer:
    def __init__(
        self,
        send: SendFrame,
        *,
        flush_ms: int,
        flush_chars: int,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if flush_ms < 0:
            raise ValueError("flush_ms must be >= 0")
        if flush_chars < 1:
            raise ValueError("flush_chars must be >= 1")
        self._send = send
        self._interval = flush_ms / 1000
        self._flush_chars = flush_chars
        self._clock = clock
        self._sleep = sleep

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        send: SendFrame,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> FrameCoalescer:
        return cls(
            send,
            flush_ms=settings.stream_flush_ms,
            flush_chars=settings.stream_flush_chars,
            clock=clock,
            sleep=sleep,
        )

    def run(self, pieces: Iterable[str]) -> str:
        """Send ``pieces`` as coalesced frames; returns the whole text."""
        source = iter(pieces)
        run = _Run(self._send, self._interval, self._flush_chars, self._clock, self._sleep)
        try:
            while True:
                try:
                    piece = next(source)
                except StopIteration:
                    break
                except Exception:
                    # The model failed mid-answer: what it said so far still goes out (the answer
                    # then ends as incomplete), so the visitor's text and the stored text agree.
                    run.flush_rest()
                    raise
                run.add(piece)
            run.finish()
        finally:
            # Stops the producer (and its HTTP request) when sending failed; a no-op once exhausted.
            close = getattr(source, "close", None)
            if close is not None:
                close()
        return run.text()


class _Run:
    """The state of one answer being coalesced."""

    def __init__(
        self,
        send: SendFrame,
        interval: float,
        flush_chars: int,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self._send = send
        self._interval = interval
        self._flush_chars = flush_chars
        self._clock = clock
        self._sleep = sleep
        self._parts: list[str] = []
        self._buffer = ""
        self._seq = 0
        self._last_send: float | None = None

    def add(self, piece: str) -> None:
        if not piece:
            return
        self._parts.append(piece)
        self._buffer += piece
        if self._last_send is None:
            self._flush(everything=True)
            return
        interval_over = self._clock() - self._last_send >= self._interval
        if interval_over or len(self._buffer) >= self._flush_chars:
            # Early (size-triggered) flushes send only full frames and keep the rest for later.
            self._flush(everything=interval_over)

    def finish(self) -> None:
        self._flush(everything=True)

    def flush_rest(self) -> None:
        """After the source failed: send what is buffered, if anything was sent before (a failure
        before any frame stays invisible, so a fallback can still answer)."""
        if self._seq:
            self._flush(everything=True)

    def text(self) -> str:
        return "".join(self._parts)

    def _flush(self, *, everything: bool) -> None:
        """Send full-size frames; with ``everything`` also the shorter rest of the buffer."""
        size = self._flush_chars
        while len(self._buffer) >= size or (everything and self._buffer):
            frame, self._buffer = self._buffer[:size], self._buffer[size:]
            self._wait_for_interval()
            self._send(frame, self._seq)
            self._seq += 1
            self._last_send = self._clock()

    def _wait_for_interval(self) -> None:
        if self._last_send is None:
            return
        remaining = self._last_send + self._interval - self._clock()
        if remaining > 0:
            self._sleep(remaining)
