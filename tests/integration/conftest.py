"""Real backing services for integration tests: moto's server and redis-server on loopback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from local.services import MotoServer, RedisServer
from shared.settings import Settings
from shared.state.tables import create_tables

# The model servers these tests stand up listen on loopback, which deployments refuse
# (shared/model/endpoint_guard.py); `make run` allows it the same way.
os.environ.setdefault("KEFU_MODEL_ENDPOINT_ALLOW_LOOPBACK", "true")


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    yield server
    server.stop()


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    if not RedisServer.available():
        pytest.fail("redis-server is not installed; `make test` installs it")
    server = RedisServer().start()
    yield server
    server.stop()


@pytest.fixture
def settings(moto_server: MotoServer) -> Settings:
    """Settings with fresh table names on the moto server (tests do not see each other's data)."""
    return fresh_tables(moto_server)


def fresh_tables(moto_server: MotoServer) -> Settings:
    """Settings naming tables of their own on the moto server, created."""
    prefix = f"it-{uuid.uuid4().hex[:8]}"
    settings = Settings(
        dynamodb_endpoint=moto_server.url,
        sqs_endpoint=moto_server.url,
        tenants_table=f"{prefix}-tenants",
        connections_table=f"{prefix}-connections",
        conversations_table=f"{prefix}-conversations",
        messages_table=f"{prefix}-messages",
        agents_table=f"{prefix}-agents",
        limits_table=f"{prefix}-limits",
    )
    create_tables(settings)
    return settings
