"""HTML pages (lxml): headings become sections, tables keep their header, FAQ markup (details/summary,
dt/dd) becomes Q/A pairs; scripts, styles and navigation are dropped."""

from __future__ import annotations

from typing import Any

from shared.ingest.errors import corrupt, empty
from shared.ingest.structure import SectionWriter
from shared.knowledge.base import Block

_DROP = ("script", "style", "noscript", "template", "svg", "iframe", "nav", "footer", "aside", "form", "button")
_HEADINGS = {"h1": 1, "h2": 2, "h3": 3, "h4": 4, "h5": 5, "h6": 6}
_TEXT_BLOCKS = {"p", "li", "pre", "blockquote", "figcaption", "address", "caption", "dd", "dt", "summary", "td", "th"}
_CONTAINERS = {
    "html", "body", "main", "article", "section", "div", "header", "ul", "ol", "dl", "details", "figure",
    "center", "font", "span", "tbody", "thead",
}  # fmt: skip


def _text(element: Any, keep_lines: bool = False) -> str:
    text = element.text_content()
    if keep_lines:
        return "\n".join(line.rstrip() for line in text.splitlines()).strip()
    return " ".join(text.split())


def _table(element: Any) -> tuple[list[str], list[list[str]]]:
    rows: list[list[str]] = []
    header: list[str] = []
    for row in element.iter("tr"):
        cells = [_text(cell) for cell in row if isinstance(cell.tag, str) and cell.tag in ("td", "th")]
        is_header = all(isinstance(c.tag, str) and c.tag == "th" for c in row if isinstance(c.tag, str)) or (
            row.getparent() is not None and row.getparent().tag == "thead"
        )
        if is_header and not header and not rows:
            header = cells
        else:
            rows.append(cells)
    return header, rows


def _walk(element: Any, writer: SectionWriter) -> None:
    tag = element.tag if isinstance(element.tag, str) else ""
    if not tag:
        return  # comments, processing instructions
    if tag in _HEADINGS:
        writer.heading(_HEADINGS[tag], _text(element))
    elif tag == "table":
        writer.table(*_table(element))
    elif tag == "details" and element.find("summary") is not None:
        summary = element.find("summary")
        answer_parts = [_text(child) for child in element if child is not summary and isinstance(child.tag, str)]
        if summary.tail and summary.tail.strip():
            answer_parts.insert(0, summary.tail.strip())
        writer.qa(_text(summary), "\n".join(part for part in answer_parts if part))
    elif tag == "dl" and element.find("dt") is not None and element.find("dd") is not None:
        question: str | None = None
        for child in element:
            if child.tag == "dt":
                question = _text(child)
            elif child.tag == "dd" and question:
                writer.qa(question, _text(child))
                question = None
    elif tag in _TEXT_BLOCKS:
        writer.text(_text(element, keep_lines=tag == "pre"))
    elif tag in _CONTAINERS:
        if element.text and element.text.strip():
            writer.text(" ".join(element.text.split()))
        for child in element:
            _walk(child, writer)
            if child.tail and child.tail.strip():
                writer.text(" ".join(child.tail.split()))
    elif tag == "br":
        return
    else:  # inline or unknown elements standing on their own: their text
        writer.text(_text(element))


def parse_html(data: bytes) -> tuple[str | None, list[Block]]:
    import lxml.etree
    import lxml.html

    if not data.strip():
        raise empty()
    try:
        root = lxml.html.document_fromstring(data)
    except (lxml.etree.ParserError, ValueError) as error:
        raise corrupt("HTML", error) from None
    for element in root.xpath("|".join(f"//{tag}" for tag in _DROP)):
        element.drop_tree()
    page_title = " ".join((root.findtext(".//title") or "").split()) or None
    body = root.find("body")
    writer = SectionWriter()
    _walk(body if body is not None else root, writer)
    title, blocks = writer.finish()
    if not blocks:
        raise empty("the page has no text")
    return page_title or title, blocks
