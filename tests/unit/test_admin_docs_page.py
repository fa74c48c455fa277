"""/docs loads nothing from a third party (issue 11): no script at all, a CSP that forbids any, every
operation listed, the OpenAPI document linked."""

from __future__ import annotations

import re

import pytest

from tests.unit.admin_support import admin_client
from tests.unit.fakes import InMemoryStateStore


def test_the_reference_page_has_no_script_and_lists_every_operation(monkeypatch: pytest.MonkeyPatch) -> None:
    with admin_client(InMemoryStateStore(), monkeypatch) as client:
        page = client.get("/docs")
        schema = client.get("/openapi.json").json()
        assert client.get("/redoc").status_code == 404
    assert page.status_code == 200
    assert "<script" not in page.text.lower()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page.text)  # nothing from elsewhere
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert 'href="openapi.json"' in page.text
    for path, operations in schema["paths"].items():
        for method in operations:
            assert f"<b>{method.upper()}</b></td><td><code>{path}</code>" in page.text
