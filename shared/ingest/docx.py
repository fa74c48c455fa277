"""Word documents (python-docx): heading styles become sections, tables keep their first row as the
header, in reading order."""

from __future__ import annotations

import io
import re

from shared.ingest.errors import FileRejected, corrupt, empty
from shared.ingest.limits import too_complex
from shared.ingest.structure import SectionWriter
from shared.knowledge.base import Block

_HEADING_STYLE = re.compile(r"^(?:heading|标题)\s*(\d)$", re.IGNORECASE)
# Counted in the parsed XML before python-docx walks it (its per-paragraph work is the slow part):
# a 300-page manual has ~10,000 paragraphs.
MAX_PARAGRAPHS = 50_000
MAX_TABLE_CELLS = 100_000


def parse_docx(data: bytes) -> tuple[str | None, list[Block]]:
    import docx
    from docx.table import Table

    try:
        document = docx.Document(io.BytesIO(data))
        _check_size(document)
        writer = SectionWriter()
        for item in document.iter_inner_content():
            if isinstance(item, Table):
                rows = [[" ".join(cell.text.split()) for cell in row.cells] for row in item.rows]
                if rows:
                    writer.table(rows[0], rows[1:])
                continue
            style = (item.style.name if item.style is not None else "") or ""
            text = item.text.strip()
            if style.lower() == "title":
                writer.heading(1, text)
            elif match := _HEADING_STYLE.match(style.strip()):
                writer.heading(int(match.group(1)) + 1, text)  # Heading 1 sits under the Title
            elif style.lower().startswith("list"):
                writer.text(f"- {text}" if text else "")
            else:
                writer.text(text)
        core_title = document.core_properties.title
    except FileRejected:
        raise
    except Exception as error:  # python-docx/lxml raise many types on damaged files
        raise corrupt("DOCX", error) from None
    title, blocks = writer.finish()
    if not blocks:
        raise empty("the document has no text")
    return (core_title or "").strip() or title, blocks


def _check_size(document: object) -> None:
    from docx.oxml.ns import qn

    body = document.element.body  # type: ignore[attr-defined]
    paragraphs = sum(1 for _ in body.iter(qn("w:p")))
    if paragraphs > MAX_PARAGRAPHS:
        raise too_complex(f"the document has {paragraphs} paragraphs; the limit is {MAX_PARAGRAPHS}")
    cells = sum(1 for _ in body.iter(qn("w:tc")))
    if cells > MAX_TABLE_CELLS:
        raise too_complex(f"the document's tables have {cells} cells; the limit is {MAX_TABLE_CELLS}")
