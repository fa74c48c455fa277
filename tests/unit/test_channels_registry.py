"""Channel kinds: a stored channel (camelCase fields, secrets by name) becomes its adapter."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from shared.channels.base import ChannelError
from shared.channels.registry import KINDS, build_channel, validate_fields
from shared.channels.webhook import WebhookChannel
from shared.channels.wechat_oa import WeChatOAChannel
from shared.channels.wecom_kf import WeComKfChannel
from tests.support.channel_state_fake import FakeChannelState

SECRETS = {
    "oa-secret": "real-app-secret",
    "oa-aes": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "kf-aes": "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG",
    "kf-secret": "real-corp-secret",
    "hook": "hook-signing-secret",
}


def lookup(name: str) -> str:
    return SECRETS[name]


def test_every_kind_builds_from_its_stored_fields() -> None:
    http = httpx.Client()
    state = FakeChannelState()
    oa = build_channel(
        "wechat_oa",
        "c1",
        {"appId": "wx1", "token": "tok123", "appSecret": "oa-secret", "encodingAesKey": "oa-aes"},
        lookup,
        state,
        http,
    )
    assert isinstance(oa, WeChatOAChannel)
    assert oa.config.app_secret == "real-app-secret" and oa.config.encoding_aes_key == SECRETS["oa-aes"]
    assert oa.config.api_base_url.rstrip("/") == "https://api.weixin.qq.com"

    kf = build_channel(
        "wecom_kf",
        "c2",
        {
            "corpId": "ww1",
            "token": "kftoken",
            "encodingAesKey": "kf-aes",
            "corpSecret": "kf-secret",
            "apiBaseUrl": "http://127.0.0.1:9/",
        },
        lookup,
        state,
        http,
    )
    assert isinstance(kf, WeComKfChannel) and kf.config.api_base_url == "http://127.0.0.1:9/"

    hook = build_channel(
        "webhook", "c3", {"deliveryUrl": "https://app.example/kefu", "secret": "hook"}, lookup, state, http
    )
    assert isinstance(hook, WebhookChannel) and hook.config.secret == "hook-signing-secret"
    assert set(KINDS) == {"wechat_oa", "wecom_kf", "webhook"}


def test_unknown_kinds_and_bad_fields_are_refused_clearly() -> None:
    with pytest.raises(ChannelError, match="unknown channel kind"):
        validate_fields("telegram", {})
    with pytest.raises(ValidationError):
        validate_fields("wechat_oa", {"appId": "wx1", "token": "tok123", "appSecret": "s", "secretValue": "x"})
    with pytest.raises(ValidationError):
        validate_fields("wechat_oa", {"appId": "wx1", "token": "bad token!", "appSecret": "s"})
    with pytest.raises(ValidationError):
        validate_fields("webhook", {"deliveryUrl": "not a url", "secret": "hook"})
