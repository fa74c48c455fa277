"""Real sample files for the ingestion tests, generated at test time: PDF (a minimal PDF 1.4 writer:
Helvetica text pages), DOCX (python-docx), XLSX (openpyxl), and text formats."""

from __future__ import annotations

import io
import json
import random


def _pdf_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def make_pdf(pages: list[list[str]], title: str | None = None, photo_bytes: int = 0) -> bytes:
    """A valid PDF whose pages show the given lines (ASCII) with a real text layer; a line starting
    with "# " is a heading, set at 18 pt instead of 12. ``photo_bytes``: the first page also shows an
    uncompressed RGB photo (noise) of about that size, as scanned or photo-heavy manuals carry."""
    objects: list[bytes] = []

    def add(body: str | bytes) -> int:
        objects.append(body.encode("latin-1") if isinstance(body, str) else body)
        return len(objects)

    catalog = add("")  # placeholders filled below, so numbers are known up front
    pages_obj = add("")
    font = add("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
    kids = []
    photo = None
    if photo_bytes:
        side = max(1, int((photo_bytes / 3) ** 0.5))
        pixels = random.Random(7).randbytes(side * side * 3)
        photo = add(
            b"<< /Type /XObject /Subtype /Image /Width %d /Height %d /ColorSpace /DeviceRGB /BitsPerComponent 8 "
            b"/Length %d >>\nstream\n" % (side, side, len(pixels)) + pixels + b"\nendstream"
        )
    for number, lines in enumerate(pages):
        ops = ["BT", "/F1 12 Tf", "72 720 Td", "16 TL"]
        for line in lines:
            if line.startswith("# "):  # a heading: set larger, as word processors do
                ops.append(f"/F1 18 Tf ({_pdf_escape(line[2:])}) Tj T* /F1 12 Tf")
            else:
                ops.append(f"({_pdf_escape(line)}) Tj T*")
        ops.append("ET")
        drawn = photo is not None and number == 0
        if drawn:
            ops.append("q 200 0 0 200 72 300 cm /Im1 Do Q")
        stream = "\n".join(ops).encode("latin-1")
        content = add(b"<< /Length %d >>\nstream\n" % len(stream) + stream + b"\nendstream")
        kids.append(
            add(
                f"<< /Type /Page /Parent {pages_obj} 0 R /MediaBox [0 0 612 792] "
                f"/Resources << /Font << /F1 {font} 0 R >>{f' /XObject << /Im1 {photo} 0 R >>' if drawn else ''} >> "
                f"/Contents {content} 0 R >>"
            )
        )
    objects[catalog - 1] = f"<< /Type /Catalog /Pages {pages_obj} 0 R >>".encode("latin-1")
    objects[pages_obj - 1] = (
        f"<< /Type /Pages /Kids [{' '.join(f'{k} 0 R' for k in kids)}] /Count {len(kids)} >>".encode("latin-1")
    )
    info = add(f"<< /Title ({_pdf_escape(title)}) >>") if title else None

    out = io.BytesIO()
    out.write(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
    offsets = []
    for number, body in enumerate(objects, start=1):
        offsets.append(out.tell())
        out.write(f"{number} 0 obj\n".encode() + body + b"\nendobj\n")
    xref = out.tell()
    out.write(f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode())
    for offset in offsets:
        out.write(f"{offset:010d} 00000 n \n".encode())
    trailer = f"<< /Size {len(objects) + 1} /Root {catalog} 0 R" + (f" /Info {info} 0 R" if info else "") + " >>"
    out.write(f"trailer\n{trailer}\nstartxref\n{xref}\n%%EOF\n".encode())
    return out.getvalue()


def make_docx(
    title: str, sections: list[tuple[str, list[str]]], table: list[list[str]] | None = None, core_title: str = ""
) -> bytes:
    import docx

    document = docx.Document()
    document.core_properties.title = core_title
    document.add_heading(title, level=0)
    for heading, paragraphs in sections:
        document.add_heading(heading, level=1)
        for paragraph in paragraphs:
            document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = value
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def make_xlsx(sheets: dict[str, list[list[object]]]) -> bytes:
    from openpyxl import Workbook

    workbook = Workbook()
    workbook.remove(workbook.active)
    for name, rows in sheets.items():
        sheet = workbook.create_sheet(name)
        for row in rows:
            sheet.append(row)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


FAQ_PAIRS = [
    ("How long does delivery take?", "Standard delivery takes 2 to 4 working days.", "When will my parcel arrive?"),
    ("Can I return an item?", "Yes, within 30 days of delivery, unused and in its box.", "What is your return policy?"),
    ("退款多久到账？", "退货入库后3个工作日内原路退款。", "什么时候退钱"),
]


def faq_csv() -> bytes:
    lines = ["question,answer,similar questions,category"]
    for question, answer, other in FAQ_PAIRS:
        lines.append(f'"{question}","{answer}","{other}",Orders')
    return ("\n".join(lines) + "\n").encode("utf-8")


def faq_json() -> bytes:
    return json.dumps(
        [{"question": q, "answer": a, "alternatives": [o]} for q, a, o in FAQ_PAIRS], ensure_ascii=False
    ).encode("utf-8")


def price_table_rows(count: int) -> list[list[str]]:
    return [[f"Model {n}", f"{100 + n}.00", f"{n % 5 + 1} years"] for n in range(count)]


MARKDOWN = """# Acme help centre

Welcome to the Acme help centre.

## Shipping

We ship every working day. Orders before 4 pm leave the same day.

### International

Parcels abroad arrive within 7 to 14 days.

## Prices

| Model | Price | Warranty |
|-------|-------|----------|
| Kettle K1 | 39.00 | 2 years |
| Kettle K2 | 59.00 | 3 years |

- Prices include VAT.
- Shipping is free above 99.
"""

HTML = """<!doctype html>
<html><head><title>Acme FAQ</title><style>body { color: red }</style><script>var tracking = 1;</script></head>
<body>
<nav><a href="/">Home</a> | <a href="/shop">Shop</a></nav>
<main>
  <h1>Frequently asked questions</h1>
  <h2>Payments</h2>
  <p>We accept Visa, Mastercard, Alipay and WeChat Pay.</p>
  <details><summary>Can I pay on delivery?</summary><p>Cash on delivery is available in mainland China.</p></details>
  <h2>Warranty</h2>
  <table>
    <thead><tr><th>Product</th><th>Warranty</th></tr></thead>
    <tbody><tr><td>Sofa</td><td>5 years</td></tr><tr><td>Kettle</td><td>2 years</td></tr></tbody>
  </table>
  <dl><dt>Is the warranty transferable?</dt><dd>Yes, with the original receipt.</dd></dl>
</main>
<footer>Copyright Acme</footer>
</body></html>
"""
