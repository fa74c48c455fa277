"""LocalHybridIndex shared by real processes (the admin API writes, the retrieve function reads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shared.knowledge.local_index import MANIFEST, LocalHybridIndex
from shared.knowledge.use_embedder import shared_embedder

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import sys
from pathlib import Path
from shared.knowledge.base import Document
from shared.knowledge.use_embedder import UseEmbedder
from shared.knowledge.local_index import LocalHybridIndex

root, tenant, prefix, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
index = LocalHybridIndex(Path(root), UseEmbedder())
for n in range(count):
    index.index(tenant, [Document(id=f"{prefix}-{n}", title=f"{prefix} topic {n}", text=f"Answer {n} from {prefix}.")])
"""

CRASHING_WRITER = """
import os, sys
from pathlib import Path
from shared.knowledge.base import Document
from shared.knowledge.use_embedder import UseEmbedder
from shared.knowledge.local_index import MANIFEST, LocalHybridIndex

real_replace = os.replace
def replace(src, dst):
    if Path(dst).name == MANIFEST:
        os._exit(17)  # the process dies after writing the new generation, before switching to it
    real_replace(src, dst)
os.replace = replace
LocalHybridIndex(Path(sys.argv[1]), UseEmbedder()).index(
    "acme", [Document(id="ghost", title="Ghost", text="This document was never committed.")]
)
"""


def run_python(code: str, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *args], cwd=REPO, env=env)


def test_concurrent_writers_in_two_processes_lose_no_document(tmp_path: Path) -> None:
    writers = [run_python(WRITER, str(tmp_path), "acme", prefix, "8") for prefix in ("alpha", "beta")]
    assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    reader = LocalHybridIndex(tmp_path, shared_embedder())
    found = {p.document_id for p in reader.search("acme", "topic answer", 50)}
    assert found == {f"{prefix}-{n}" for prefix in ("alpha", "beta") for n in range(8)}


def test_a_reader_sees_what_another_process_wrote(tmp_path: Path) -> None:
    reader = LocalHybridIndex(tmp_path, shared_embedder())
    assert reader.search("acme", "alpha topic", 5) == []
    assert run_python(WRITER, str(tmp_path), "acme", "alpha", "2").wait(timeout=120) == 0
    assert {p.document_id for p in reader.search("acme", "alpha topic", 5)} == {"alpha-0", "alpha-1"}
    assert run_python(WRITER, str(tmp_path), "acme", "gamma", "1").wait(timeout=120) == 0
    assert "gamma-0" in {p.document_id for p in reader.search("acme", "gamma topic", 5)}


def test_a_writer_dying_mid_write_leaves_the_committed_index_readable(tmp_path: Path) -> None:
    assert run_python(WRITER, str(tmp_path), "acme", "alpha", "1").wait(timeout=120) == 0
    manifest = (tmp_path / "acme" / MANIFEST).read_bytes()
    assert run_python(CRASHING_WRITER, str(tmp_path)).wait(timeout=120) == 17

    assert (tmp_path / "acme" / MANIFEST).read_bytes() == manifest
    index = LocalHybridIndex(tmp_path, shared_embedder())
    assert {p.document_id for p in index.search("acme", "ghost document", 10)} == {"alpha-0"}
    # the dead writer's uncommitted generation is cleaned up by the next write
    committed = json.loads(manifest)["version"]
    (ghost,) = versions(tmp_path) - {committed}
    index.index("acme", [])
    assert committed in versions(tmp_path) and ghost not in versions(tmp_path)
    assert list((tmp_path / "acme").glob(".tmp-*")) == []
    assert {p.document_id for p in index.search("acme", "ghost document", 10)} == {"alpha-0"}


def versions(root: Path) -> set[str]:
    return {p.stem.removeprefix("chunks-") for p in (root / "acme").glob("chunks-*.json")}
