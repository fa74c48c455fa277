"""docs/architecture.md's Ports table lists every port: each abstract class of shared/ is in it."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")


def _ports() -> dict[str, str]:
    """Abstract base classes (``class X(ABC)``) declared in shared/, with their files."""
    found = {}
    for path in sorted((ROOT / "shared").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and any(
                isinstance(base, ast.Name) and base.id == "ABC" for base in node.bases
            ):
                found[node.name] = path.relative_to(ROOT).as_posix()
    return found


def test_every_port_is_in_the_ports_table() -> None:
    table = ARCHITECTURE.split("## Ports", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    ports = _ports()
    assert len(ports) > 15  # the scan finds them
    missing = {name: path for name, path in ports.items() if not any(f"`{name}`" in row for row in rows)}
    assert missing == {}, f"ports not in docs/architecture.md's Ports table: {missing}"
    misplaced = {
        name: path for name, path in ports.items() if not any(f"`{name}`" in row and f"`{path}`" in row for row in rows)
    }
    assert misplaced == {}, f"ports listed under another file than where they are declared: {misplaced}"
