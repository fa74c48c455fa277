"""Documents -> chunks: the unit that is indexed, retrieved and cited.

Structure decides the cuts (the complaints customer-service teams have about other engines are
tables cut in half and FAQ answers separated from their question):

- a Q/A pair is one chunk, however long; each phrasing of the question is matched on its own;
- a table is cut between rows only, and every chunk repeats the header row;
- prose is cut on sentence boundaries with a small overlap (text.split_passages).

Every chunk keeps its document's id, title and URL and its section, so a citation can point to it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass

from shared.knowledge.base import Block, Document
from shared.knowledge.text import split_passages

DEFAULT_MAX_CHARS = 800
DEFAULT_OVERLAP_CHARS = 120
# How many phrasings of one FAQ question are matched separately (more are kept in the text only).
MAX_QUESTION_VARIANTS = 200


@dataclass(frozen=True)
class Chunk:
    """One passage of a document, carrying what a citation needs.

    ``text`` is what a model reads and a citation quotes (self-contained: a Q/A chunk holds the
    question and the answer, a table chunk its header). ``leads`` are the short texts the chunk is
    matched by besides its text: the document title (and section), or each phrasing of a question.
    """

    document_id: str
    title: str
    url: str | None
    text: str
    ordinal: int
    section: str | None = None
    kind: str = "text"
    leads: tuple[str, ...] = ()

    @property
    def match_leads(self) -> tuple[str, ...]:
        return self.leads or (self.title,)


def _lead(title: str, section: str | None) -> str:
    return f"{title}: {section}" if section and section.strip() != title.strip() else title


def render_row(cells: list[str]) -> str:
    return "| " + " | ".join(" ".join(cell.split()) for cell in cells) + " |"


def table_passages(header: list[str], rows: list[list[str]], max_chars: int) -> list[str]:
    """Rows grouped into passages of about max_chars, each starting with the header row.

    A row is never split: a row longer than the budget becomes a passage of its own.
    """
    head = render_row(header) if header else ""
    passages: list[str] = []
    current: list[str] = []
    size = len(head)
    for row in rows:
        line = render_row(row)
        if current and size + 1 + len(line) > max_chars:
            passages.append("\n".join([head, *current] if head else current))
            current, size = [], len(head)
        current.append(line)
        size += 1 + len(line)
    if current:
        passages.append("\n".join([head, *current] if head else current))
    return passages


def _qa_text(questions: list[str], answer: str) -> str:
    question = questions[0].strip()
    return f"{question}\n{answer.strip()}" if answer.strip() else question


def _block_chunks(document: Document, block: Block, max_chars: int, overlap_chars: int) -> Iterator[Chunk]:
    def chunk(text: str, kind: str, section: str | None, leads: tuple[str, ...]) -> Chunk:
        return Chunk(document.id, document.title, document.url, text, 0, section, kind, leads)

    if block.kind == "qa":
        questions = list(dict.fromkeys(" ".join(q.split()) for q in block.questions if q.strip()))
        yield chunk(
            _qa_text(questions, block.text),
            "qa",
            block.section or questions[0],
            tuple(questions[:MAX_QUESTION_VARIANTS]),
        )
        return
    lead = (_lead(document.title, block.section),)
    if block.kind == "table":
        for passage in table_passages(block.header, block.rows, max_chars):
            yield chunk(passage, "table", block.section, lead)
        return
    for passage in split_passages(block.text, max_chars, overlap_chars):
        yield chunk(passage, "text", block.section, lead)


def chunk_document(
    document: Document, max_chars: int = DEFAULT_MAX_CHARS, overlap_chars: int = DEFAULT_OVERLAP_CHARS
) -> list[Chunk]:
    """The document's chunks in order; a document with no text still yields one chunk (its title)."""
    blocks = list(document.blocks or [])
    if document.text.strip():
        blocks.insert(0, Block(kind="text", text=document.text))
    chunks = [chunk for block in blocks for chunk in _block_chunks(document, block, max_chars, overlap_chars)]
    if not chunks:
        chunks = [Chunk(document.id, document.title, document.url, text=document.title, ordinal=0)]
    return [dataclasses.replace(chunk, ordinal=n) for n, chunk in enumerate(chunks)]
