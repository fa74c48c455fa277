"""Tenant model endpoints cannot reach the metadata service or the Lambda Runtime API, however the
address is spelled (issue 11): literal forms are refused when the configuration is saved, names are
resolved and every address checked when a connection is made."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from shared.addresses import check_host
from shared.model.endpoint_guard import GuardedTransport
from shared.settings import get_settings
from shared.tenant_config.model import ModelTarget


def problem(endpoint: str) -> str:
    with pytest.raises(ValueError) as caught:
        ModelTarget.model_validate({"provider": "openai", "model": "m", "endpoint": endpoint})
    return str(caught.value)


@pytest.fixture(autouse=True)
def _fresh_settings() -> Iterator[None]:
    """Settings read under this module's environment are not left cached for the tests after it."""
    yield
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("http://169.254.169.254/v1", "link-local"),
        ("http://2852039166/v1", "link-local"),  # decimal 169.254.169.254
        ("http://0xa9fea9fe/v1", "link-local"),
        ("http://0251.0376.0251.0376/v1", "link-local"),
        ("http://169.254.43518/v1", "link-local"),
        ("http://[::ffff:169.254.169.254]/v1", "link-local"),
        ("http://[::ffff:a9fe:a9fe]/v1", "link-local"),
        ("http://[64:ff9b::a9fe:a9fe]/v1", "link-local"),
        ("http://[fe80::1]/v1", "link-local"),
        ("http://[fd00:ec2::254]/v1", None),  # unique-local: a private range, allowed (see below)
        ("http://127.0.0.1:9001/v1", "loopback"),  # the Lambda Runtime API
        ("http://2130706433:9001/v1", "loopback"),
        ("http://[::1]:9001/v1", "loopback"),
        ("http://localhost:9001/v1", "loopback"),
        ("http://0.0.0.0/v1", "unspecified"),
        ("http://224.0.0.1/v1", "multicast"),
    ],
)
def test_blocked_addresses_in_every_notation_are_refused(
    endpoint: str, reason: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The deployment's default (the integration suite allows loopback for its local model servers).
    monkeypatch.delenv("KEFU_MODEL_ENDPOINT_ALLOW_LOOPBACK", raising=False)
    get_settings.cache_clear()
    if reason is None:
        ModelTarget.model_validate({"provider": "openai", "model": "m", "endpoint": endpoint})
    else:
        assert reason in problem(endpoint)


def test_private_and_public_endpoints_stay_allowed() -> None:
    for host in ("10.20.0.5", "192.168.1.4", "vllm.acme.internal", "api.openai.com", "[fd12::5]"):
        check_host(host, allow_loopback=False)


def test_loopback_is_allowed_only_when_the_deployment_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KEFU_MODEL_ENDPOINT_ALLOW_LOOPBACK", "true")
    get_settings.cache_clear()
    try:
        ModelTarget.model_validate({"provider": "openai", "model": "m", "endpoint": "http://127.0.0.1:11434/v1"})
        assert "link-local" in problem("http://169.254.169.254/v1")  # never, whatever the setting
    finally:
        get_settings.cache_clear()


def resolver(*addresses: str):  # type: ignore[no-untyped-def]
    def resolve(host: str, port: int, **_: object) -> list[tuple]:
        family = socket.AF_INET6
        return [(family if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    return resolve


@pytest.mark.parametrize(
    ("addresses", "reason"),
    [
        (("169.254.169.254",), "link-local"),  # 169.254.169.254.nip.io
        (("93.184.216.34", "169.254.169.254"), "link-local"),  # one bad address among good ones
        (("::ffff:169.254.169.254",), "link-local"),
        (("127.0.0.1",), "loopback"),
    ],
)
def test_a_name_resolving_to_a_blocked_address_is_never_connected(addresses: tuple[str, ...], reason: str) -> None:
    transport = GuardedTransport(ssl_context=None, allow_loopback=False, resolve=resolver(*addresses))
    with httpx.Client(transport=transport) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get("http://169.254.169.254.nip.io/v1/models")
    assert f"resolves to a {reason} address" in str(caught.value)
