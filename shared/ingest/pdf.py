"""PDF (pypdf, pure Python): the text layer page by page; each page is a section ("page 3") so a
citation can point to it. Scanned PDFs without a text layer are refused with that reason."""

from __future__ import annotations

import io
import logging

from shared.ingest.errors import FileRejected, corrupt
from shared.knowledge.base import Block

_MIN_CHARS = 20  # a text layer with less than this in the whole file is not one


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
            text = (page.extract_text() or "").strip()
            if text:
                blocks.append(Block(kind="text", text=text, section=f"page {number}"))
        title = reader.metadata.title if reader.metadata and reader.metadata.title else None
    except FileRejected:
        raise
    except Exception as error:  # pypdf raises many types on damaged files: all mean "cannot read it"
        raise corrupt("PDF", error) from None
    if sum(len(block.text) for block in blocks) < _MIN_CHARS:
        raise FileRejected("the PDF has no text layer (a scan?); run OCR on it first", 422, "no_text")
    clean_title = str(title).strip() if title else ""
    return clean_title or None, blocks
