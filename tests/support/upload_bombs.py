"""Hostile uploads, built small here: the shapes issue 11 found (a far-away cell, a flood of empty
paragraphs, a file that expands a thousandfold) and zip-level variants of them."""

from __future__ import annotations

import io
import re
import zipfile

from tests.support.knowledge_samples import make_docx, make_xlsx


def _rewrite(data: bytes, replacements: dict[str, bytes], *, compress_level: int = 9) -> bytes:
    """A copy of an OOXML zip with some entries' contents replaced."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=compress_level) as target:
        for info in source.infolist():
            target.writestr(info.filename, replacements.get(info.filename, source.read(info.filename)))
    return out.getvalue()


def xlsx_with_far_cell(reference: str) -> bytes:
    """A one-cell workbook whose only cell sits at ``reference`` (e.g. ALL100000): tiny on disk,
    but the sheet's declared dimension spans every row and column up to it."""
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.active[reference] = "x"
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


def xlsx_with_rows(count: int, column: str = "A") -> bytes:
    """A workbook with ``count`` rows, each one value in ``column``, written straight into the sheet
    XML without a dimension (fast to build)."""
    base = make_xlsx({"Sheet": [["name", "value"]]})
    rows = b"".join(
        b'<row r="%d"><c r="%s%d" t="inlineStr"><is><t>r%d</t></is></c></row>' % (n, column.encode(), n, n)
        for n in range(1, count + 1)
    )
    sheet = zipfile.ZipFile(io.BytesIO(base)).read("xl/worksheets/sheet1.xml")
    data = b"<sheetData>" + rows + b"</sheetData>"
    sheet = re.sub(rb"<sheetData>.*</sheetData>|<sheetData/>", data, sheet, flags=re.S)
    sheet = re.sub(rb"<dimension [^>]*/>", b"", sheet)
    return _rewrite(base, {"xl/worksheets/sheet1.xml": sheet})


def _docx_with_body(body: bytes) -> bytes:
    base = make_docx("Bomb", [("Section", ["text"])])
    document = zipfile.ZipFile(io.BytesIO(base)).read("word/document.xml")
    document = re.sub(rb"<w:body>.*</w:body>", b"<w:body>" + body + b"</w:body>", document, flags=re.S)
    return _rewrite(base, {"word/document.xml": document})


def docx_with_empty_paragraphs(count: int) -> bytes:
    """``count`` empty paragraphs: a few KB that python-docx walks one by one."""
    return _docx_with_body(b"<w:p/>" * count)


def docx_with_paragraphs(count: int) -> bytes:
    """``count`` short paragraphs of random letters: they compress no better than prose does."""
    import random

    letters = random.Random(11)
    body = b"".join(
        b"<w:p><w:r><w:t>%s</w:t></w:r></w:p>" % bytes(letters.choices(b"abcdefghijklmnopqrstuvwxyz ", k=12))
        for _ in range(count)
    )
    return _docx_with_body(body)


def docx_expanding_to(megabytes: int) -> bytes:
    """One paragraph of ``megabytes`` MB of the same letter: deflate shrinks it about a thousandfold."""
    text = b"a" * (megabytes * 1024 * 1024)
    return _docx_with_body(b"<w:p><w:r><w:t>" + text + b"</w:t></w:r></w:p>")


def zip_with_entries(count: int) -> bytes:
    """A DOCX with ``count`` extra (tiny) entries."""
    base = make_docx("Many parts", [("Section", ["text"])])
    out = io.BytesIO(base)
    with zipfile.ZipFile(out, "a") as archive:
        for n in range(count):
            archive.writestr(f"word/media/extra{n}.bin", b"")
    return out.getvalue()
