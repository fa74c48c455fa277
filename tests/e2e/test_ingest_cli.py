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


def kefu_command(stack: LocalStackInfo) -> list[str]:
    return [sys.executable, "-m", "shared.cli", "--admin-url", stack.admin_url, "--admin-key", stack.admin_key]


def kefu(stack: LocalStackInfo, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*kefu_command(stack), *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


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
    assert "ingested 2 of 3 files" in result.stdout and "broken.pdf: corrupt_file" in result.stdout

    end = ask_tenant_bot(local_stack, tenant, "How often should I descale my kettle?")
    assert end["type"] == "answer.end" and end["citations"], end
    assert end["citations"][0]["documentId"] == "kettle-manual.pdf"
    assert "four weeks" in end["text"]

    searched = kefu(local_stack, "search", "Do you deliver to Macau?", "--tenant", tenant["tenantId"])
    assert searched.returncode == 0 and "faq.xlsx" in searched.stdout and "the bot answers" in searched.stdout

    # A reader that goes away (`kefu search … | head`): the CLI stops quietly, no traceback.
    piped = subprocess.Popen(
        [*kefu_command(local_stack), "search", "Do you deliver to Macau?", "-k", "20", "--tenant", tenant["tenantId"]],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert piped.stdout is not None and piped.stderr is not None
    piped.stdout.close()  # closed before the answer comes back
    complaint = piped.stderr.read()
    assert piped.wait(timeout=120) == 1 and complaint == ""

    # The documents, by the ids delete takes; deleting the manual removes its passages.
    listed = kefu(local_stack, "documents", "--tenant", tenant["tenantId"])
    assert listed.returncode == 0 and listed.stdout.startswith("2 document(s)")
    assert [line.split()[0] for line in listed.stdout.splitlines()[1:]] == ["faq.xlsx", "kettle-manual.pdf"]
    deleted = kefu(local_stack, "delete", "kettle-manual.pdf", "--tenant", tenant["tenantId"])
    assert deleted.returncode == 0 and "deleted 'kettle-manual.pdf'" in deleted.stdout
    end = ask_tenant_bot(local_stack, tenant, "How often should I descale my kettle?")
    assert all(c["documentId"] != "kettle-manual.pdf" for c in end["citations"])
