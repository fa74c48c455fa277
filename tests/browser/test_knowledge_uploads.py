"""The console's knowledge page (web/console/knowledge.html) in Chromium against `make run`: a tenant
admin picks files, each goes to (moto's) S3 through a presigned POST from the browser (CORS), and the
page shows it indexed, or failed with its reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, expect

from tests.support.knowledge_samples import make_pdf

pytestmark = pytest.mark.browser


def test_a_tenant_admin_uploads_files_from_the_console(browser: Browser, stack: dict[str, Any], tmp_path: Path) -> None:
    headers = {"Authorization": f"Bearer {stack['admin_key']}"}
    with httpx.Client(base_url=stack["admin_url"], headers=headers, timeout=60) as admin:
        tenant = admin.post("/v1/tenants", json={"name": "Browser uploads"}).json()
        key = admin.post(f"/v1/tenants/{tenant['tenantId']}/admin-keys", json={"name": "uploads page"}).json()
    manual = tmp_path / "zephyr-manual.pdf"
    manual.write_bytes(make_pdf([["# Zephyr kettle", "Descale the Zephyr every six weeks."]], photo_bytes=1_500_000))
    broken = tmp_path / "broken.pdf"
    broken.write_bytes(b"%PDF-1.4 truncated")

    page = browser.new_page()
    page.goto(f"{stack['admin_url']}/console/knowledge.html")
    expect(page.locator("#admin-url")).to_have_text(stack["admin_url"])
    page.fill("#tenant", tenant["tenantId"])
    page.fill("#admin-key", key["adminKey"])
    page.set_input_files("#files", [str(manual), str(broken)])
    page.click("#upload")

    rows = page.locator("#uploads tbody tr")
    expect(rows.filter(has_text="zephyr-manual.pdf")).to_have_attribute("data-status", "ok", timeout=120_000)
    expect(rows.filter(has_text="zephyr-manual.pdf")).to_contain_text("indexed")
    expect(rows.filter(has_text="broken.pdf")).to_have_attribute("data-status", "error", timeout=120_000)
    expect(rows.filter(has_text="broken.pdf")).to_contain_text("corrupt_file")
    expect(rows.filter(has_text="broken.pdf").locator("td").nth(1)).to_have_text("18 B")
    expect(rows.filter(has_text="zephyr-manual.pdf").locator("td").nth(1)).to_contain_text(" MB")
    with httpx.Client(base_url=stack["admin_url"], headers=headers, timeout=60) as admin:
        listed = admin.get(f"/v1/tenants/{tenant['tenantId']}/knowledge").json()["documents"]
    assert [d["documentId"] for d in listed] == ["zephyr-manual.pdf"]

    # A wrong key is refused by the admin API, and the page says so.
    page.fill("#admin-key", "tak.wrong")
    page.set_input_files("#files", [str(manual)])
    page.click("#upload")
    expect(rows.nth(2)).to_have_attribute("data-status", "error", timeout=30_000)
    expect(rows.nth(2)).to_contain_text("wrong admin key")
    page.close()
