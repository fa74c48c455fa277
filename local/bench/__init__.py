"""`make bench`: benchmarks whose figures go into docs/performance.md, each part in its own section.

A part is a module in this package with ``run() -> str`` returning Markdown; ``update_section`` puts it
between ``<!-- bench:NAME -->`` markers so parts can be re-run on their own.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
from pathlib import Path

PERFORMANCE_DOC = Path(__file__).resolve().parents[2] / "docs" / "performance.md"


def machine_line() -> str:
    """Where and when a figure was measured."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, ValueError, IndexError):
        pass
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d")
    return (
        f"Measured {today} on {os.cpu_count()} cores ({cpu}){memory}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}."
    )


def update_section(name: str, markdown: str, path: Path = PERFORMANCE_DOC) -> None:
    """Replace (or append) the ``name`` section of the document."""
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n{markdown.strip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Performance\n"
    pattern = re.compile(re.escape(start) + r".*?" + re.escape(end), re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")
