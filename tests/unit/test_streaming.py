"""FrameCoalescer with a fake clock: no sleeping, no timing assertions, only ordering and invariants."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest

from shared.chat.streaming import FrameCoalescer
from shared.errors import ConnectionGone
from shared.settings import Settings


class FakeClock:
    """Time that moves only when the test (or the coalescer's sleep) moves it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def advance_ms(self, ms: float) -> None:
        self.now += ms / 1000

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class RecordingSender:
    def __init__(self, clock: FakeClock, gone_after: int | None = None) -> None:
        self.clock = clock
        self.frames: list[tuple[str, int]] = []
        self.sent_at: list[float] = []
        self.gone_after = gone_after

    def __call__(self, text: str, seq: int) -> None:
        if self.gone_after is not None and len(self.frames) >= self.gone_after:
            raise ConnectionGone("connection is gone")
        self.frames.append((text, seq))
        self.sent_at.append(self.clock())


def timed_pieces(clock: FakeClock, plan: Sequence[tuple[float, str]], log: list[str] | None = None) -> Iterator[str]:
    """Yields each piece after advancing the fake clock by its delay (ms); logs what was produced."""
    for delay_ms, piece in plan:
        clock.advance_ms(delay_ms)
        if log is not None:
            log.append(piece)
        yield piece


def coalescer(sender: RecordingSender, clock: FakeClock, flush_ms: int = 60, flush_chars: int = 400) -> FrameCoalescer:
    return FrameCoalescer(sender, flush_ms=flush_ms, flush_chars=flush_chars, clock=clock, sleep=clock.sleep)


def test_first_piece_is_sent_as_soon_as_it_arrives() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    produced: list[str] = []

    def pieces() -> Iterator[str]:
        for piece in timed_pieces(clock, [(0, "Hello"), (1, " there")], produced):
            # When the second piece is requested the first must already be on the wire.
            if piece == " there":
                assert sender.frames == [("Hello", 0)]
            yield piece

    coalescer(sender, clock).run(pieces())

    assert sender.frames[0] == ("Hello", 0)


def test_later_pieces_are_buffered_until_flush_ms_has_passed() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    plan = [(0, "A"), (10, "b"), (10, "c"), (10, "d"), (35, "e"), (10, "f"), (10, "g")]

    text = coalescer(sender, clock, flush_ms=60).run(timed_pieces(clock, plan))

    # "e" arrives 65 ms after "A" was sent: b..e go together; f, g are left for the final flush.
    assert sender.frames == [("A", 0), ("bcde", 1), ("fg", 2)]
    assert text == "Abcdefg"


def test_buffer_is_flushed_when_it_reaches_flush_chars() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    plan = [(0, "first"), (1, "12345"), (1, "67890"), (1, "ab"), (1, "cdefghij")]

    coalescer(sender, clock, flush_ms=60, flush_chars=10).run(timed_pieces(clock, plan))

    texts = [text for text, _ in sender.frames]
    assert texts == ["first", "1234567890", "abcdefghij"]
    assert all(len(text) <= 10 for text in texts)


def test_an_oversized_piece_is_split_into_frames_of_at_most_flush_chars() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)

    coalescer(sender, clock, flush_chars=4).run(iter(["abcdefghij"]))

    assert sender.frames == [("abcd", 0), ("efgh", 1), ("ij", 2)]


def test_the_rest_is_flushed_at_the_end_and_the_whole_text_returned() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)

    text = coalescer(sender, clock).run(iter(["From ", "our ", "help ", "centre."]))

    assert sender.frames == [("From ", 0), ("our help centre.", 1)]
    assert text == "From our help centre."


def test_seq_counts_frames_in_send_order_and_frames_rebuild_the_text() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    words = [f"w{i} " for i in range(200)]
    plan = [(7 * (i % 5), word) for i, word in enumerate(words)]

    text = coalescer(sender, clock, flush_ms=50, flush_chars=30).run(timed_pieces(clock, plan))

    assert [seq for _, seq in sender.frames] == list(range(len(sender.frames)))
    assert "".join(frame for frame, _ in sender.frames) == text == "".join(words)
    assert len(sender.frames) > 3


def test_sends_are_never_closer_than_flush_ms_even_when_text_arrives_fast() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    # 2 ms apart and large: size-triggered flushes would otherwise fire on almost every piece.
    plan = [(2, "x" * 25) for _ in range(40)]

    coalescer(sender, clock, flush_ms=60, flush_chars=50).run(timed_pieces(clock, plan))

    gaps = [later - earlier for earlier, later in zip(sender.sent_at, sender.sent_at[1:], strict=False)]
    assert gaps and min(gaps) >= 0.060 - 1e-9
    assert all(len(text) <= 50 for text, _ in sender.frames)
    assert "".join(text for text, _ in sender.frames) == "x" * 1000


def test_empty_pieces_are_ignored_and_do_not_count_as_the_first_piece() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)

    text = coalescer(sender, clock).run(iter(["", "", "Hi", ""]))

    assert sender.frames == [("Hi", 0)]
    assert text == "Hi"


def test_no_pieces_means_no_frames() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)

    assert coalescer(sender, clock).run(iter([])) == ""
    assert sender.frames == []


def test_connection_gone_stops_consuming_closes_the_source_and_propagates() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock, gone_after=1)
    produced: list[str] = []
    closed = False

    def source() -> Iterator[str]:
        nonlocal closed
        try:
            yield from timed_pieces(clock, [(0, "one")] + [(100, f" {i}") for i in range(100)], produced)
        finally:
            closed = True

    pieces = source()  # held here, so only an explicit close (not garbage collection) can close it

    with pytest.raises(ConnectionGone):
        coalescer(sender, clock).run(pieces)

    assert closed
    assert sender.frames == [("one", 0)]
    # The second send (after " 0") failed; nothing was pulled after that.
    assert produced == ["one", " 0"]


def test_flush_ms_zero_sends_every_piece() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)

    coalescer(sender, clock, flush_ms=0).run(iter(["a", "b", "c"]))

    assert sender.frames == [("a", 0), ("b", 1), ("c", 2)]
    assert clock.slept == []


def test_from_settings_uses_the_stream_settings() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    settings = Settings(stream_flush_ms=60, stream_flush_chars=3)

    FrameCoalescer.from_settings(settings, sender, clock=clock, sleep=clock.sleep).run(iter(["a", "bcdef"]))

    assert [text for text, _ in sender.frames] == ["a", "bcd", "ef"]


@pytest.mark.parametrize(("flush_ms", "flush_chars"), [(-1, 10), (10, 0)])
def test_invalid_limits_are_refused(flush_ms: int, flush_chars: int) -> None:
    with pytest.raises(ValueError):
        FrameCoalescer(lambda text, seq: None, flush_ms=flush_ms, flush_chars=flush_chars)


@pytest.mark.parametrize("tokens_per_second", [5, 20, 50, 200, 1000, 5000])
def test_with_the_default_settings_no_stream_gets_more_than_20_posts_a_second(tokens_per_second: int) -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)
    gap_ms = 1000 / tokens_per_second
    plan = [(gap_ms if i else 150.0, f" tok{i}") for i in range(tokens_per_second * 3)]  # 3 s of tokens

    text = FrameCoalescer.from_settings(Settings(), sender, clock=clock, sleep=clock.sleep).run(
        timed_pieces(clock, plan)
    )

    # The first frame leaves the moment the first token arrives (150 ms: the model's own latency).
    assert sender.sent_at[0] == pytest.approx(1000.150) and sender.frames[0] == (" tok0", 0)
    # In any one-second window, at most 20 posts.
    busiest = max(sum(1 for t in sender.sent_at if start <= t < start + 1) for start in sender.sent_at)
    assert busiest <= 20
    assert "".join(frame for frame, _ in sender.frames) == text


def test_a_source_failure_after_the_first_frame_sends_what_was_buffered_then_propagates() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)

    def cut() -> Iterator[str]:
        yield from timed_pieces(clock, [(0, "Deliveries "), (1, "take "), (1, "2 to")])
        raise RuntimeError("model server killed")

    with pytest.raises(RuntimeError, match="killed"):
        coalescer(sender, clock).run(cut())

    # The buffered pieces went out: what the visitor saw is everything the model said.
    assert "".join(text for text, _ in sender.frames) == "Deliveries take 2 to"
    assert [seq for _, seq in sender.frames] == list(range(len(sender.frames)))


def test_a_source_failure_before_any_frame_sends_nothing() -> None:
    clock = FakeClock()
    sender = RecordingSender(clock)

    def dead() -> Iterator[str]:
        raise RuntimeError("connection refused")
        yield ""  # pragma: no cover

    with pytest.raises(RuntimeError, match="refused"):
        coalescer(sender, clock).run(dead())
    assert sender.frames == []
