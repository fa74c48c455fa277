"""Secrets by reference: read once, kept for a while, failures explained without the value."""

from __future__ import annotations

from typing import Any

import pytest

from shared.model.secrets import SecretsManagerResolver, SecretUnavailable


class FakeSecretsManager:
    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.reads = 0

    def get_secret_value(self, SecretId: str) -> dict[str, Any]:  # noqa: N803 - boto3's name
        self.reads += 1
        if SecretId not in self.values:
            error = Exception("not found")
            error.response = {"Error": {"Code": "ResourceNotFoundException"}}  # type: ignore[attr-defined]
            raise error
        return {"SecretString": self.values[SecretId]}


def test_a_secret_is_read_once_per_ttl() -> None:
    now = [0.0]
    client = FakeSecretsManager({"kefu/key": "sk-1"})
    resolver = SecretsManagerResolver(lambda: client, ttl_seconds=900, clock=lambda: now[0])

    assert resolver.get("kefu/key") == resolver.get("kefu/key") == "sk-1"
    assert client.reads == 1
    client.values["kefu/key"] = "sk-2"  # rotated
    now[0] = 901
    assert resolver.get("kefu/key") == "sk-2"


def test_a_missing_secret_says_which_and_why() -> None:
    resolver = SecretsManagerResolver(lambda: FakeSecretsManager({}))

    with pytest.raises(SecretUnavailable, match="'kefu/missing': ResourceNotFoundException"):
        resolver.get("kefu/missing")


def test_the_client_is_created_only_when_a_secret_is_read() -> None:
    created: list[int] = []

    def factory() -> FakeSecretsManager:
        created.append(1)
        return FakeSecretsManager({"k": "v"})

    resolver = SecretsManagerResolver(factory)
    assert created == []
    resolver.get("k")
    resolver.get("k")
    assert created == [1]
