"""Uploads of any size through `make run`'s stack: the admin API hands out a presigned POST to moto's
S3, the file (larger than API Gateway's ~6 MB request cap) goes straight to the bucket, S3's
ObjectCreated event runs the ingest function, its status is polled to indexed, and a visitor's
question is answered from it; a malformed file is reported failed with its reason."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.client import LocalStackInfo, ask_tenant_bot
from tests.e2e.test_ingest_cli import kefu
from tests.support.knowledge_samples import make_pdf

pytestmark = pytest.mark.e2e
API_GATEWAY_REQUEST_CAP = 6 * 1024 * 1024  # what an upload through the admin API could not exceed in AWS


def upload(admin: httpx.Client, tenant_id: str, filename: str, data: bytes, content_type: str) -> str:
    declared = {"filename": filename, "contentType": content_type, "size": len(data)}
    ticket = admin.post(f"/v1/tenants/{tenant_id}/knowledge/uploads", json=declared)
    assert ticket.status_code == 201, ticket.text
    body = ticket.json()
    sent = httpx.post(body["url"], data=body["fields"], files={"file": (filename, data, content_type)}, timeout=120)
    assert sent.status_code == 204, sent.text
    return str(body["uploadId"])


def poll(admin: httpx.Client, tenant_id: str, upload_id: str, timeout: float = 240) -> tuple[list[str], dict[str, Any]]:
    """The statuses seen (in order, without repeats) until a terminal one, and the last answer."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = admin.get(f"/v1/tenants/{tenant_id}/knowledge/uploads/{upload_id}").json()
        if not seen or seen[-1] != status["status"]:
            seen.append(status["status"])
        if status["status"] in ("indexed", "failed"):
            return seen, status
        time.sleep(0.1)
    raise AssertionError(f"upload {upload_id} never settled: {seen}")


def test_a_file_larger_than_a_request_is_uploaded_indexed_and_answered_from(
    local_stack: LocalStackInfo, tmp_path: Path
) -> None:
    with local_stack.admin() as admin:
        tenant = admin.post("/v1/tenants", json={"name": "Kettle shop"}).json()
        manual = make_pdf(
            [
                ["# Zephyr kettle manual", "The Zephyr kettle boils 1.7 litres in three minutes."],
                ["Descale the Zephyr every six weeks with white vinegar."],
            ],
            title="Zephyr kettle manual",
            photo_bytes=7_000_000,
        )
        assert len(manual) > API_GATEWAY_REQUEST_CAP
        upload_id = upload(admin, tenant["tenantId"], "zephyr-manual.pdf", manual, "application/pdf")
        seen, status = poll(admin, tenant["tenantId"], upload_id)
        assert seen[-1] == "indexed" and set(seen) <= {"pending", "parsing", "embedding", "indexed"}, (seen, status)
        assert status["documentId"] == "zephyr-manual.pdf" and status["chunks"] >= 1 and status["error"] is None
        assert (
            status["knowledgeVersion"]
            == admin.get(f"/v1/tenants/{tenant['tenantId']}/knowledge/version").json()["knowledgeVersion"]
        )

        broken = upload(
            admin, tenant["tenantId"], "broken.docx", b"PK\x03\x04 not a zip at all" * 10, "application/octet-stream"
        )
        seen, status = poll(admin, tenant["tenantId"], broken)
        assert seen[-1] == "failed" and status["error"]["code"] == "corrupt_file", status
        assert "DOCX" in status["error"]["message"]
        listed = admin.get(f"/v1/tenants/{tenant['tenantId']}/knowledge").json()["documents"]
        assert [d["documentId"] for d in listed] == ["zephyr-manual.pdf"]  # nothing of the broken file

        refused = admin.post(
            f"/v1/tenants/{tenant['tenantId']}/knowledge/uploads",
            json={"filename": "huge.pdf", "contentType": "application/pdf", "size": 10**9},
        )
        assert refused.status_code == 413 and refused.json()["error"]["code"] == "file_too_large"

    end = ask_tenant_bot(local_stack, tenant, "How often should I descale the Zephyr?")
    assert end["type"] == "answer.end" and end["citations"], end
    assert end["citations"][0]["documentId"] == "zephyr-manual.pdf" and "six weeks" in end["text"]

    # The CLI sends the same large file the same way, waits for it and reports it.
    path = tmp_path / "zephyr-manual-v2.pdf"
    path.write_bytes(manual)
    result = kefu(local_stack, "ingest", str(path), "--tenant", tenant["tenantId"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ingested 1 of 1 files" in result.stdout
    assert "1/1" in result.stderr and "done" in result.stderr  # the progress bar ran to the end
