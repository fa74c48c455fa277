"""Platform access tokens (WeChat ``access_token``, WeCom ``access_token``) cached in one shared place.

Refreshing a WeChat token invalidates the one before it, so every container must use the same token
and only one caller may refresh at a time: the token lives in ``ChannelState`` and a refresh takes a
short lock there. A caller whose token the platform rejected (40001/42001) asks for a refresh *of that
token*: if someone else already replaced it, it gets the new one without calling the platform again.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from shared.channels.base import ChannelError
from shared.channels.state import ChannelState

# Refresh this long before the platform's expiry, so a token is never used in its last minutes.
_EARLY_SECONDS = 300.0
_LOCK_SECONDS = 10.0


@dataclass(frozen=True)
class FetchedToken:
    token: str
    expires_in: float


class TokenUnavailable(ChannelError):
    """No token could be had (the platform refused the credentials, or the refresher never finished)."""


class AccessTokens:
    """The shared token of one platform credential (``key``: e.g. ``wechat_oa:<appid>``)."""

    def __init__(
        self,
        state: ChannelState,
        key: str,
        fetch: Callable[[], FetchedToken],
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        wait_seconds: float = 8.0,
        poll_seconds: float = 0.05,
    ) -> None:
        self._state = state
        self._key = f"chan:token:{key}"
        self._lock_key = f"chan:token-lock:{key}"
        self._fetch = fetch
        self._clock = clock
        self._sleep = sleep
        self._wait = wait_seconds
        self._poll = poll_seconds
        self.fetches = 0  # calls to the platform's token endpoint made by this instance

    def current(self) -> str:
        """A valid token, fetching one (under the lock) only if none is cached."""
        cached = self._cached()
        if cached is not None:
            return cached
        return self._refresh(stale=None)

    def refresh(self, stale: str) -> str:
        """The platform rejected ``stale``: return a newer token, fetching one only if none replaced it yet."""
        return self._refresh(stale=stale)

    def _cached(self) -> str | None:
        value = self._state.get(self._key)
        if value is None:
            return None
        return str(value["token"])

    def _refresh(self, stale: str | None) -> str:
        deadline = self._clock() + self._wait
        owner = uuid.uuid4().hex
        while True:
            cached = self._cached()
            if cached is not None and cached != stale:
                return cached
            if self._state.put_if_absent(self._lock_key, {"owner": owner}, _LOCK_SECONDS):
                try:
                    # Someone may have refreshed between our read and our lock.
                    cached = self._cached()
                    if cached is not None and cached != stale:
                        return cached
                    fetched = self._fetch()
                    self.fetches += 1
                    ttl = max(fetched.expires_in - _EARLY_SECONDS, min(fetched.expires_in, 60.0))
                    self._state.put(self._key, {"token": fetched.token}, ttl)
                    return fetched.token
                finally:
                    self._state.delete(self._lock_key, only_if={"owner": owner})
            if self._clock() >= deadline:
                raise TokenUnavailable("timed out waiting for another caller to refresh the access token")
            self._sleep(self._poll)
