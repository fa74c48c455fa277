"""The README and docs/ point at things that exist: every relative Markdown link names a file of the
repository (and, with a #fragment, a heading of it), and every `path/in/backticks` that names a file
or folder of the repository's own trees still names one after a move."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md"), *ROOT.glob("local/**/README.md")])
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
# Code spans that are repository paths: they start with one of the repository's top-level folders.
TREES = ("shared", "functions", "local", "infra", "tests", "web", "docs")
CODE_PATH = re.compile(r"`((?:" + "|".join(TREES) + r")/[A-Za-z0-9_./-]*)`")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    lines = page.read_text(encoding="utf-8").splitlines()
    return {_slug(line.lstrip("#")) for line in lines if re.match(r"^#{1,6} ", line)}


def _outside_code_blocks(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.DOTALL)


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in LINK.findall(_outside_code_blocks(page.read_text(encoding="utf-8"))):
        if re.match(r"^[a-z]+:", target):
            continue  # http(s), mailto: not checked offline
        path, _, fragment = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists() or ROOT not in (linked, *linked.parents):
            broken.append(target)
        elif fragment and linked.suffix == ".md" and fragment not in _anchors(linked):
            broken.append(target)
    assert not broken, f"{page.relative_to(ROOT)} links to what does not exist: {broken}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_repository_paths_in_code_spans_exist(page: Path) -> None:
    stale = sorted(
        {
            path
            for path in CODE_PATH.findall(page.read_text(encoding="utf-8"))
            if "*" not in path and "<" not in path and not (ROOT / path.rstrip(".")).exists()
        }
    )
    assert not stale, f"{page.relative_to(ROOT)} names paths that do not exist: {stale}"
