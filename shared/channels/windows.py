"""Reply windows and message quotas per customer, as the platforms enforce them.

WeChat (since June 2023) lets an account message a user for 48 hours after the user's message, a
handful of messages at most (5); a menu click, follow or QR scan opens 1 minute and 3 messages. WeCom's
微信客服 allows 48 hours and 5 messages after each customer message. kefu keeps its own count, so it
can tell the console a window has closed before the platform refuses (45015/45047), and marks it closed
when the platform does refuse (its count wins).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from shared.channels.base import WindowClosed, WindowState
from shared.channels.state import ChannelState


@dataclass(frozen=True)
class WindowRule:
    seconds: float
    messages: int


@dataclass(frozen=True)
class WindowPolicy:
    after_message: WindowRule
    after_event: WindowRule


WECHAT_OA_WINDOWS = WindowPolicy(WindowRule(48 * 3600, 5), WindowRule(60, 3))
WECOM_KF_WINDOWS = WindowPolicy(WindowRule(48 * 3600, 5), WindowRule(48 * 3600, 5))

_RETRIES = 8


class ReplyWindows:
    def __init__(
        self, state: ChannelState, channel_id: str, policy: WindowPolicy, clock: Callable[[], float] = time.time
    ) -> None:
        self._state = state
        self._channel_id = channel_id
        self._policy = policy
        self._clock = clock

    def _key(self, customer_id: str) -> str:
        return f"chan:window:{self._channel_id}:{customer_id}"

    def opened(self, customer_id: str, by: str, at: float | None = None) -> WindowState:
        """The customer acted (``by``: ``message`` or ``event``): a fresh window and quota.
        A short event window never shortens a longer one still open."""
        rule = self._policy.after_message if by == "message" else self._policy.after_event
        start = self._clock() if at is None else at
        expires = start + rule.seconds
        for _ in range(_RETRIES):
            current = self._state.get(self._key(customer_id))
            version = None if current is None else int(current["_version"])
            if current is not None and current["open"] and float(current["expires_at"]) > expires:
                return self._as_state(current)
            value = {"open": True, "expires_at": expires, "remaining": rule.messages, "reason": ""}
            if self._state.put_if_version(self._key(customer_id), value, version, self._ttl(expires)):
                return self._as_state(value)
        return self.state(customer_id)

    def state(self, customer_id: str) -> WindowState:
        current = self._state.get(self._key(customer_id))
        if current is None:
            return WindowState(open=False, expires_at=None, remaining=0, reason="the customer has not written yet")
        return self._as_state(current)

    def consume(self, customer_id: str, count: int = 1) -> int:
        """Take up to ``count`` messages from the quota; returns how many may be sent (at least 1),
        or raises ``WindowClosed``."""
        for _ in range(_RETRIES):
            current = self._state.get(self._key(customer_id))
            state = self.state(customer_id) if current is None else self._as_state(current)
            if not state.open or current is None:
                raise WindowClosed(state.reason or "the reply window is closed")
            taken = min(count, int(current["remaining"]))
            remaining = int(current["remaining"]) - taken
            value = {
                **current,
                "remaining": remaining,
                "open": remaining > 0,
                "reason": "" if remaining > 0 else "message quota used up; waiting for the customer to write",
            }
            if self._state.put_if_version(
                self._key(customer_id), value, int(current["_version"]), self._ttl(float(current["expires_at"]))
            ):
                return taken
        raise WindowClosed("the reply window is busy; try again")

    def closed(self, customer_id: str, reason: str) -> None:
        """The platform refused a send (its word is final until the customer writes again)."""
        for _ in range(_RETRIES):
            current = self._state.get(self._key(customer_id))
            version = None if current is None else int(current["_version"])
            expires = self._clock() if current is None else float(current["expires_at"])
            value = {"open": False, "expires_at": expires, "remaining": 0, "reason": reason}
            if self._state.put_if_version(self._key(customer_id), value, version, self._ttl(expires)):
                return

    def _as_state(self, value: dict[str, object]) -> WindowState:
        expires = float(value["expires_at"])  # type: ignore[arg-type]
        remaining = int(value["remaining"])  # type: ignore[call-overload]
        if value["open"] and self._clock() >= expires:
            return WindowState(False, expires, 0, "the 48-hour reply window has passed")
        if value["open"] and remaining <= 0:
            return WindowState(False, expires, 0, "message quota used up; waiting for the customer to write")
        return WindowState(bool(value["open"]), expires, remaining, str(value.get("reason", "")))

    def _ttl(self, expires: float) -> float:
        # Keep the record a day past its end so the console can still say why it closed.
        return max(expires - self._clock(), 0.0) + 24 * 3600
