"""Collecting a document's blocks in reading order while tracking its heading path."""

from __future__ import annotations

from shared.knowledge.base import Block

MAX_SECTION_CHARS = 500


class SectionWriter:
    """Feed headings, paragraphs, tables and FAQ pairs in order; ``finish`` returns the title (the
    first top-level heading) and the blocks, each prose block carrying its heading path."""

    def __init__(self) -> None:
        self.title: str | None = None
        self._path: dict[int, str] = {}
        self._lines: list[str] = []
        self._blocks: list[Block] = []

    @property
    def section(self) -> str | None:
        names = [self._path[level] for level in sorted(self._path) if self._path[level]]
        if not names:
            return None
        section = " > ".join(names)
        return section if len(section) <= MAX_SECTION_CHARS else "…" + section[-(MAX_SECTION_CHARS - 1) :]

    def _flush(self) -> None:
        text = "\n".join(line for line in self._lines if line.strip()).strip()
        if text:
            self._blocks.append(Block(kind="text", text=text, section=self.section))
        self._lines = []

    def heading(self, level: int, text: str) -> None:
        text = " ".join(text.split())
        if not text:
            return
        self._flush()
        if level == 1 and self.title is None and not self._blocks:
            self.title = text  # the document's own title, not a section
            return
        self._path = {lvl: name for lvl, name in self._path.items() if lvl < level}
        self._path[level] = text

    def text(self, text: str) -> None:
        if text.strip():
            self._lines.append(text)

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        rows = [row for row in rows if any(cell.strip() for cell in row)]
        if not rows:
            if header:
                self.text(" | ".join(header))
            return
        self._flush()
        width = max(len(header), *(len(row) for row in rows))
        pad = lambda cells: cells + [""] * (width - len(cells))  # noqa: E731
        self._blocks.append(
            Block(kind="table", header=pad(header) if header else [], rows=[pad(r) for r in rows], section=self.section)
        )

    def qa(self, question: str, answer: str) -> None:
        question = " ".join(question.split())
        if not question:
            return
        self._flush()
        section = self.section
        self._blocks.append(
            Block(
                kind="qa",
                questions=[question],
                text=answer.strip(),
                section=section and f"{section}: {question}"[:MAX_SECTION_CHARS],
            )
        )

    def finish(self) -> tuple[str | None, list[Block]]:
        self._flush()
        return self.title, self._blocks
