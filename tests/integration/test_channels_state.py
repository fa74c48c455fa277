"""The ``ChannelState`` contract, run on the DynamoDB adapter (moto's server) and on the unit tests'
fake, and the shared token refresh across "containers" on DynamoDB."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable

import boto3
import pytest

from local.services import MotoServer
from shared.channels.dynamodb_state import DynamoChannelState
from shared.channels.secrets import SecretMissing, SecretsManagerTenantSecrets
from shared.channels.state import ChannelState
from shared.channels.tokens import AccessTokens, FetchedToken
from shared.settings import Settings
from tests.support.channel_state_fake import FakeChannelState


class Clock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["dynamodb", "fake"])
def make_state(request: pytest.FixtureRequest) -> Callable[[Callable[[], float]], ChannelState]:
    if request.param == "fake":
        return lambda clock: FakeChannelState(clock)
    settings: Settings = request.getfixturevalue("settings")  # fresh tables on moto's server
    return lambda clock: DynamoChannelState(
        settings.limits_table, settings.dynamodb_endpoint, settings.aws_region, clock
    )


def test_get_put_and_expiry(make_state: Callable[[Callable[[], float]], ChannelState]) -> None:
    clock = Clock()
    state = make_state(clock)
    assert state.get("chan:x") is None
    state.put("chan:x", {"token": "中文", "n": 1}, 60)
    assert state.get("chan:x") == {"token": "中文", "n": 1}
    clock.now += 61
    assert state.get("chan:x") is None  # expired, whatever DynamoDB's TTL has done yet


def test_put_if_absent_is_a_lock_that_expires(make_state: Callable[[Callable[[], float]], ChannelState]) -> None:
    clock = Clock()
    state = make_state(clock)
    assert state.put_if_absent("chan:lock", {"owner": "a"}, 10)
    assert not state.put_if_absent("chan:lock", {"owner": "b"}, 10)
    state.delete("chan:lock", only_if={"owner": "b"})  # not b's lock: stays
    assert state.get("chan:lock") == {"owner": "a"}
    clock.now += 11
    assert state.put_if_absent("chan:lock", {"owner": "b"}, 10)  # a's lock expired
    state.delete("chan:lock", only_if={"owner": "b"})
    assert state.get("chan:lock") is None


def test_versioned_updates(make_state: Callable[[Callable[[], float]], ChannelState]) -> None:
    state = make_state(Clock())
    assert state.put_if_version("chan:w", {"left": 5}, None, 100)
    assert not state.put_if_version("chan:w", {"left": 9}, None, 100)
    current = state.get("chan:w")
    assert current is not None and current["left"] == 5 and current["_version"] == 1
    assert state.put_if_version("chan:w", {"left": 4}, 1, 100)
    assert not state.put_if_version("chan:w", {"left": 3}, 1, 100)  # a stale writer loses
    assert state.get("chan:w") == {"left": 4, "_version": 2}


def test_token_refresh_across_containers_on_dynamodb(settings: Settings) -> None:
    fetches: list[int] = []
    lock = threading.Lock()

    def fetch() -> FetchedToken:
        with lock:
            fetches.append(1)
            return FetchedToken(f"T{len(fetches)}", 7200)

    def container() -> AccessTokens:
        state = DynamoChannelState(settings.limits_table, settings.dynamodb_endpoint, settings.aws_region)
        return AccessTokens(state, "wechat_oa:wx1", fetch, poll_seconds=0.02)

    assert container().current() == "T1"
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(container().refresh(stale="T1"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == ["T2"] * 8
    assert len(fetches) == 2


def test_tenant_secrets_in_secrets_manager(moto_server: MotoServer) -> None:
    prefix = f"kefu-it-{uuid.uuid4().hex[:8]}"
    secrets = SecretsManagerTenantSecrets(
        lambda: boto3.client("secretsmanager", endpoint_url=moto_server.url, region_name="us-east-1"), prefix
    )
    assert not secrets.exists("t1", "oa-secret")
    with pytest.raises(SecretMissing):
        secrets.get("t1", "oa-secret")
    secrets.put("t1", "oa-secret", "first")
    secrets.put("t1", "oa-secret", "rotated")  # a second PUT replaces the value
    assert secrets.exists("t1", "oa-secret") and secrets.get("t1", "oa-secret") == "rotated"
    assert not secrets.exists("t2", "oa-secret")  # per tenant
