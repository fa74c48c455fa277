"""Files into a tenant's knowledge with the `kefu` CLI (a real process, over HTTP to `make run`'s admin
API), then a visitor's question over the WebSocket is answered from them, with a citation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.client import LocalStackInfo, ask_tenant_bot
from tests.support.knowledge_samples import make_pdf, make_xlsx

pytestmark = pytest.mark.e2e
ROOT = Path(__file__).resolve().parents[2]


def kefu(stack: LocalStackInfo, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shared.cli", "--admin-url", stack.admin_url, "--admin-key", stack.admin_key]
    return subprocess.run([*command, *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_cli_ingest_then_the_bot_answers_from_the_files(local_stack: LocalStackInfo, tmp_path: Path) -> None:
    with local_stack.admin() as admin:
        tenant = admin.post("/v1/tenants", json={"name": "Kettle shop"}).json()
    files = tmp_path / "knowledge"
    files.mkdir()
    (files / "kettle-manual.pdf").write_bytes(
        make_pdf(
            [["Kettle K2 manual", "Descale the kettle every four weeks with citric acid."], ["Never run it dry."]],
            title="Kettle K2 manual",
        )
    )
    (files / "faq.xlsx").write_bytes(
        make_xlsx({"FAQ": [["Question", "Answer"], ["Do you ship to Macau?", "Yes, Macau orders arrive in 5 days."]]})
    )
    (files / "broken.pdf").write_bytes(b"%PDF-1.4 truncated")

    result = kefu(local_stack, "ingest", str(files), "--tenant", tenant["tenantId"])
    assert result.returncode == 1, result.stderr  # one file was refused, the others are in
    assert "ingested 2 of 3 files" in result.stdout and "broken.pdf: 422" in result.stdout

    end = ask_tenant_bot(local_stack, tenant, "How often should I descale my kettle?")
    assert end["type"] == "answer.end" and end["citations"], end
    assert end["citations"][0]["documentId"] == "kettle-manual.pdf"
    assert "four weeks" in end["text"]

    searched = kefu(local_stack, "search", "Do you deliver to Macau?", "--tenant", tenant["tenantId"])
    assert searched.returncode == 0 and "faq.xlsx" in searched.stdout and "the bot answers" in searched.stdout

    # Deleting the manual removes its passages: the bot no longer quotes it.
    with local_stack.admin() as admin:
        deleted = admin.delete(f"/v1/tenants/{tenant['tenantId']}/knowledge/kettle-manual.pdf")
        assert deleted.status_code == 200 and deleted.json()["knowledgeVersion"]
    end = ask_tenant_bot(local_stack, tenant, "How often should I descale my kettle?")
    assert all(c["documentId"] != "kettle-manual.pdf" for c in end["citations"])
