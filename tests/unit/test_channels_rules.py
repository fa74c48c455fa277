"""Platform rules that need no network: shared access tokens, reply windows and quotas, reply
splitting and citations."""

from __future__ import annotations

import threading

import pytest

from shared.channels.base import OutboundCitation, WindowClosed
from shared.channels.replies import compose_reply, split_reply, utf8_length
from shared.channels.tokens import AccessTokens, FetchedToken, TokenUnavailable
from shared.channels.windows import WECHAT_OA_WINDOWS, ReplyWindows
from tests.support.channel_state_fake import FakeChannelState


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- access tokens ---


def test_token_is_fetched_once_and_shared_by_every_caller() -> None:
    state = FakeChannelState()
    fetched: list[int] = []

    def fetch() -> FetchedToken:
        fetched.append(1)
        return FetchedToken(f"T{len(fetched)}", 7200)

    first = AccessTokens(state, "wechat_oa:wx1", fetch)
    second = AccessTokens(state, "wechat_oa:wx1", fetch)  # another container, same shared state
    assert first.current() == "T1"
    assert second.current() == "T1"
    assert len(fetched) == 1


def test_concurrent_refreshes_of_one_expired_token_call_the_platform_once() -> None:
    state = FakeChannelState()
    calls: list[int] = []
    gate = threading.Event()

    def slow_fetch() -> FetchedToken:
        calls.append(1)
        gate.wait(0.2)  # the refresh takes a while: everyone else must wait, not refresh too
        return FetchedToken(f"T{len(calls)}", 7200)

    tokens = [AccessTokens(state, "k", slow_fetch, poll_seconds=0.005) for _ in range(12)]
    state.put("chan:token:k", {"token": "OLD"}, 7000)
    results: list[str] = []

    def refresh(provider: AccessTokens) -> None:
        results.append(provider.refresh(stale="OLD"))

    threads = [threading.Thread(target=refresh, args=(provider,)) for provider in tokens]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert results == ["T1"] * 12
    assert len(calls) == 1


def test_refresh_of_an_already_replaced_token_does_not_call_the_platform() -> None:
    state = FakeChannelState()
    calls: list[int] = []

    def fetch() -> FetchedToken:
        calls.append(1)
        return FetchedToken("NEW", 7200)

    state.put("chan:token:k", {"token": "NEWER"}, 7000)
    assert AccessTokens(state, "k", fetch).refresh(stale="OLD") == "NEWER"
    assert calls == []


def test_token_expires_early_and_is_fetched_again() -> None:
    clock = Clock()
    state = FakeChannelState(clock)
    count = iter(range(1, 10))
    tokens = AccessTokens(state, "k", lambda: FetchedToken(f"T{next(count)}", 7200), clock=clock)
    assert tokens.current() == "T1"
    clock.advance(7200 - 299)  # within the last five minutes of the platform's 7,200 s
    assert tokens.current() == "T2"


def test_a_refresher_that_never_finishes_times_out_clearly() -> None:
    clock = Clock()
    state = FakeChannelState(clock)
    state.put("chan:token-lock:k", {"owner": "someone else"}, 60)

    def sleep(seconds: float) -> None:
        clock.advance(seconds)

    tokens = AccessTokens(state, "k", lambda: FetchedToken("T", 7200), clock=clock, sleep=sleep, wait_seconds=2)
    with pytest.raises(TokenUnavailable):
        tokens.current()


def test_a_failed_fetch_releases_the_lock() -> None:
    state = FakeChannelState()

    def broken() -> FetchedToken:
        raise RuntimeError("platform down")

    with pytest.raises(RuntimeError):
        AccessTokens(state, "k", broken).current()
    assert state.get("chan:token-lock:k") is None
    assert AccessTokens(state, "k", lambda: FetchedToken("T", 7200)).current() == "T"


# --- windows and quotas ---


def windows(clock: Clock) -> ReplyWindows:
    return ReplyWindows(FakeChannelState(clock), "ch1", WECHAT_OA_WINDOWS, clock)


def test_no_message_before_the_customer_writes() -> None:
    tracker = windows(Clock())
    assert not tracker.state("u1").open
    with pytest.raises(WindowClosed):
        tracker.consume("u1")


def test_a_message_opens_48_hours_and_five_messages() -> None:
    clock = Clock()
    tracker = windows(clock)
    state = tracker.opened("u1", "message")
    assert state.open and state.remaining == 5 and state.expires_at == clock.now + 48 * 3600
    assert tracker.consume("u1", 3) == 3
    assert tracker.consume("u1", 3) == 2  # only what is left
    closed = tracker.state("u1")
    assert not closed.open and "quota" in closed.reason
    with pytest.raises(WindowClosed):
        tracker.consume("u1")
    tracker.opened("u1", "message")  # the customer writes again: a fresh quota
    assert tracker.state("u1").remaining == 5


def test_the_window_closes_after_48_hours() -> None:
    clock = Clock()
    tracker = windows(clock)
    tracker.opened("u1", "message")
    clock.advance(48 * 3600 - 1)
    assert tracker.state("u1").open
    clock.advance(2)
    state = tracker.state("u1")
    assert not state.open and "48-hour" in state.reason
    with pytest.raises(WindowClosed):
        tracker.consume("u1")


def test_an_event_opens_one_minute_and_three_messages_but_never_shortens_a_window() -> None:
    clock = Clock()
    tracker = windows(clock)
    state = tracker.opened("u1", "event")
    assert state.remaining == 3 and state.expires_at == clock.now + 60
    clock.advance(61)
    assert not tracker.state("u1").open

    tracker.opened("u2", "message")
    tracker.opened("u2", "event")
    assert tracker.state("u2").remaining == 5
    assert tracker.state("u2").expires_at == clock.now + 48 * 3600


def test_the_platforms_refusal_closes_the_window_until_the_customer_writes() -> None:
    tracker = windows(Clock())
    tracker.opened("u1", "message")
    tracker.closed("u1", "the 48-hour reply window has passed")
    assert tracker.state("u1").reason == "the 48-hour reply window has passed"
    assert not tracker.state("u1").open
    tracker.opened("u1", "message")
    assert tracker.state("u1").open


def test_windows_are_per_customer_and_concurrent_sends_never_exceed_the_quota() -> None:
    clock = Clock()
    state = FakeChannelState(clock)
    tracker = ReplyWindows(state, "ch1", WECHAT_OA_WINDOWS, clock)
    tracker.opened("u1", "message")
    assert not tracker.state("u2").open
    taken: list[int] = []

    def send() -> None:
        try:
            taken.append(ReplyWindows(state, "ch1", WECHAT_OA_WINDOWS, clock).consume("u1"))
        except WindowClosed:
            taken.append(0)

    threads = [threading.Thread(target=send) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert sum(taken) == 5


# --- splitting and citations ---


def test_short_answer_is_one_message() -> None:
    assert split_reply("退款一般3到5个工作日到账。") == ["退款一般3到5个工作日到账。"]


def test_long_answer_splits_between_sentences_under_the_byte_limit() -> None:
    sentence = "您的退款会在三到五个工作日内原路退回到您的支付账户。"  # 26 characters, 78 bytes
    text = sentence * 60  # 4,680 bytes
    parts = split_reply(text, 2048)
    assert len(parts) == 3
    assert all(utf8_length(part) <= 2048 for part in parts)
    assert all(part.endswith("。") for part in parts)  # every cut is after a sentence
    assert "".join(parts) == text


def test_mixed_language_sentences_and_line_breaks_are_boundaries() -> None:
    text = "First line.\nSecond sentence! 第三句？Fourth (quoted.) done"
    parts = split_reply(text, 30)
    assert all(utf8_length(part) <= 30 for part in parts)
    assert parts[0] == "First line.\nSecond sentence!"  # 28 bytes: two sentences fit in one message
    assert parts[1:] == ["第三句？Fourth (quoted.)", "done"]


def test_a_sentence_longer_than_the_limit_is_cut_at_a_space_or_a_character_never_mid_character() -> None:
    parts = split_reply("词" * 1000, 2048)  # 3,000 bytes with no boundary
    assert [utf8_length(part) for part in parts] == [2046, 954]
    words = split_reply("word " * 100, 64)
    assert all(utf8_length(part) <= 64 for part in words)
    assert all(not part.startswith("ord") for part in words)


def test_citations_are_short_titles_or_links_after_the_answer() -> None:
    citations = [
        OutboundCitation(
            "退款政策（2026年修订版）关于原路退回、到账时间与手续费的完整说明文档", "https://help.example.com/refund"
        ),
        OutboundCitation("常见问题"),
        OutboundCitation("常见问题"),  # the same source twice is listed once
    ]
    [message] = compose_reply("退款3到5个工作日到账。", citations)
    lines = message.splitlines()
    assert lines[0] == "退款3到5个工作日到账。"
    assert lines[2] == "参考："
    assert lines[3].startswith("1. 《退款政策") and lines[3].endswith("…》 https://help.example.com/refund")
    assert lines[4] == "2. 《常见问题》"
    assert len(lines) == 5


def test_empty_answer_sends_nothing() -> None:
    assert compose_reply("  ", None) == []
