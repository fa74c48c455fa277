"""Channel kinds and how a stored channel becomes an adapter.

Each kind is one module in this package that defines ``Fields`` (a pydantic model of what the admin
API accepts for it, in camelCase; credentials are names of tenant secrets, never values) and
``build(channel_id, fields, secret, state, http)``. ``KINDS`` maps the kind's name to its module,
imported only when a channel of that kind is used (each import is paid on a cold start).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, cast

import httpx
from pydantic import BaseModel

from shared.channels.base import Channel, ChannelError
from shared.channels.state import ChannelState

KINDS: dict[str, str] = {
    "wechat_oa": "shared.channels.wechat_oa",
    "wecom_kf": "shared.channels.wecom_kf",
    "webhook": "shared.channels.webhook",
}

SecretLookup = Callable[[str], str]


class ChannelModule(Protocol):
    Fields: type[BaseModel]

    def build(
        self, channel_id: str, fields: BaseModel, secret: SecretLookup, state: ChannelState, http: httpx.Client
    ) -> Channel: ...


def kind_module(kind: str) -> ChannelModule:
    module_name = KINDS.get(kind)
    if module_name is None:
        raise ChannelError(f"unknown channel kind {kind!r}; known: {', '.join(sorted(KINDS))}")
    return cast(ChannelModule, importlib.import_module(module_name))


def validate_fields(kind: str, fields: dict[str, Any]) -> BaseModel:
    """The kind's fields, checked (pydantic ``ValidationError`` on bad input)."""
    return kind_module(kind).Fields.model_validate(fields)


def build_channel(
    kind: str,
    channel_id: str,
    fields: dict[str, Any],
    secret: SecretLookup,
    state: ChannelState,
    http: httpx.Client,
) -> Channel:
    module = kind_module(kind)
    return module.build(channel_id, module.Fields.model_validate(fields), secret, state, http)
