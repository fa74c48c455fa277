"""Calls to WeChat's and WeCom's JSON APIs: the shared access token on every call, one refresh and
retry when the platform says the token expired, and their error codes mapped to kefu's exceptions.
Both platforms answer errors as ``{"errcode": n, "errmsg": "…"}`` with HTTP 200."""

from __future__ import annotations

from typing import Any

import httpx

from shared.channels.base import ChannelError, PlatformError, SessionStateRefused, WindowClosed
from shared.channels.tokens import AccessTokens

# 40001: invalid credential (often a token another caller's refresh replaced); 40014: invalid
# token; 42001: token expired.
TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# 45015: the 48-hour window has passed; 45047: the message quota of the window is used up.
WINDOW_ERRORS = frozenset({45015, 45047})
SESSION_STATE_ERROR = 95018


def raise_for_errcode(payload: dict[str, Any]) -> None:
    code = int(payload.get("errcode", 0) or 0)
    if code == 0:
        return
    message = str(payload.get("errmsg", ""))
    if code in WINDOW_ERRORS:
        raise WindowClosed(
            "the 48-hour reply window has passed" if code == 45015 else "the window's message quota is used up"
        )
    if code == SESSION_STATE_ERROR:
        raise SessionStateRefused(f"the session's state does not allow this message ({message})")
    raise PlatformError(code, message)


class PlatformApi:
    def __init__(self, http: httpx.Client, base_url: str, tokens: AccessTokens) -> None:
        self._http = http
        self._base = base_url.rstrip("/")
        self.tokens = tokens

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` to ``path`` with the shared token; one refresh and retry on a token error."""
        token = self.tokens.current()
        payload = self._post_once(path, body, token)
        if int(payload.get("errcode", 0) or 0) in TOKEN_ERRORS:
            token = self.tokens.refresh(stale=token)
            payload = self._post_once(path, body, token)
        raise_for_errcode(payload)
        return payload

    def _post_once(self, path: str, body: dict[str, Any], token: str) -> dict[str, Any]:
        try:
            response = self._http.post(f"{self._base}{path}", params={"access_token": token}, json=body)
        except httpx.HTTPError as exc:
            raise ChannelError(f"platform unreachable: {type(exc).__name__}") from exc
        return _json(response)


def fetch_json(http: httpx.Client, url: str, params: dict[str, str]) -> dict[str, Any]:
    try:
        response = http.get(url, params=params)
    except httpx.HTTPError as exc:
        raise ChannelError(f"platform unreachable: {type(exc).__name__}") from exc
    return _json(response)


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        raise ChannelError(f"platform answered HTTP {response.status_code}")
    try:
        payload = response.json()
    except ValueError as exc:
        raise ChannelError("platform answered something other than JSON") from exc
    if not isinstance(payload, dict):
        raise ChannelError("platform answered something other than a JSON object")
    return payload
