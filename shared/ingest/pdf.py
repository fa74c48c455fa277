"""PDF (pypdf, pure Python): the text layer page by page; each page is a section ("page 3") so a
citation can point to it. Scanned PDFs without a text layer are refused with that reason.

Headings split a page further: a line set clearly larger than the page's body text is a heading, and
the text under it becomes a block of its own ("page 3 > Charging"). A manual's page covers several
topics; as one chunk, each topic's question matched the whole page too weakly to be answered.
Chinese lines that the layout wrapped mid-word are joined back ("4.5小\n时" is "4.5小时" again).
"""

from __future__ import annotations

import io
import logging
import math
import re
from collections import Counter
from typing import Any

from shared.ingest.errors import FileRejected, corrupt
from shared.knowledge.base import Block

_MIN_CHARS = 20  # a text layer with less than this in the whole file is not one
# A heading's letters are at least this much larger than the body's (HTML/Word: h2 ~1.17-1.5x body).
_HEADING_SCALE = 1.15
_MAX_HEADING_CHARS = 80
_WIDE = "\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
# A line break with Chinese on one side and no space or full stop before it: the layout wrapped the
# line, not the author.
_WRAPPED_CJK = re.compile(rf"(?<=[^\s。！？])\n(?=[{_WIDE}])|(?<=[{_WIDE}])(?<![。！？])\n(?=\S)")


def parse_pdf(data: bytes) -> tuple[str | None, list[Block]]:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # it warns about every small defect it repairs
    if b"%PDF-" not in data[:1024]:
        raise corrupt("PDF", "it does not start with a PDF header")
    try:
        reader = PdfReader(io.BytesIO(data))
        if reader.is_encrypted and not reader.decrypt(""):
            raise FileRejected("the PDF is password-protected; upload an unprotected copy", 422, "encrypted_file")
        blocks = []
        for number, page in enumerate(reader.pages, start=1):
            blocks.extend(_page_blocks(page, number))
        title = reader.metadata.title if reader.metadata and reader.metadata.title else None
    except FileRejected:
        raise
    except Exception as error:  # pypdf raises many types on damaged files: all mean "cannot read it"
        raise corrupt("PDF", error) from None
    if sum(len(block.text) for block in blocks) < _MIN_CHARS:
        raise FileRejected("the PDF has no text layer (a scan?); run OCR on it first", 422, "no_text")
    clean_title = str(title).strip() if title else ""
    return clean_title or None, blocks


def _page_blocks(page: Any, number: int) -> list[Block]:
    """The page's text as one block, or one per heading when its lines show headings."""
    headings = _heading_lines(page)
    text = (page.extract_text() or "").strip()
    sections: list[tuple[str, list[str]]] = [(f"page {number}", [])]
    for line in text.split("\n"):
        if _squeezed(line) in headings:
            sections.append((f"page {number} > {' '.join(line.split())}", []))
        else:
            sections[-1][1].append(line)
    blocks = []
    for section, lines in sections:
        body = _WRAPPED_CJK.sub("", "\n".join(lines).strip())
        if body:
            blocks.append(Block(kind="text", text=body, section=section))
    return blocks


def _heading_lines(page: Any) -> set[str]:
    """The page's lines (without spaces) set clearly larger than most of its text."""
    lines: list[list[Any]] = []  # [text, size, baseline]

    def visit(text: str, cm: list[float], tm: list[float], font: Any, font_size: float) -> None:
        if not text:
            return
        size = font_size * math.hypot(tm[2], tm[3]) * math.hypot(cm[2], cm[3])
        baseline = tm[4] * cm[1] + tm[5] * cm[3] + cm[5]
        for n, part in enumerate(text.split("\n")):
            if n > 0 or not lines or abs(lines[-1][2] - baseline) > max(size, 1.0) / 2:
                lines.append(["", 0.0, baseline])
            if part.strip():
                lines[-1][0] += part
                lines[-1][1] = max(lines[-1][1], size)

    try:
        page.extract_text(visitor_text=visit)
    except Exception:  # a page pypdf reads but cannot measure: one block, as before
        return set()
    chars: Counter[float] = Counter()
    for text, size, _ in lines:
        chars[round(size, 1)] += len(_squeezed(text))
    if not chars:
        return set()
    body = chars.most_common(1)[0][0]
    return {
        _squeezed(text)
        for text, size, _ in lines
        if size >= body * _HEADING_SCALE and 0 < len(_squeezed(text)) <= _MAX_HEADING_CHARS
    }


def _squeezed(text: str) -> str:
    return "".join(text.split())
