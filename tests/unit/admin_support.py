"""The admin app in-process (FastAPI's TestClient, no sockets) over in-memory fakes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from shared.admin import deps
from shared.admin.app import create_app
from shared.settings import get_settings
from tests.unit.fakes import InMemoryStateStore

ADMIN_KEY = "test-key"


@contextmanager
def admin_client(
    store: InMemoryStateStore,
    monkeypatch: pytest.MonkeyPatch,
    *,
    overrides: dict[Callable[..., Any], Callable[[], Any]] | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[TestClient]:
    """A client of the admin app with its key, the given store and other dependencies overridden."""
    monkeypatch.setenv("KEFU_ADMIN_KEY", ADMIN_KEY)
    for name, value in (env or {}).items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    deps._admin_key.cache_clear()
    app = create_app()
    app.dependency_overrides[deps._store] = lambda: store
    app.dependency_overrides.update(overrides or {})
    try:
        with TestClient(app, headers={"Authorization": f"Bearer {ADMIN_KEY}"}) as client:
            yield client
    finally:
        get_settings.cache_clear()
        deps._admin_key.cache_clear()
