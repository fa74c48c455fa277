"""Markdown (CommonMark + tables, via markdown-it-py): headings become sections, tables stay tables."""

from __future__ import annotations

from typing import Any

from shared.ingest.errors import empty
from shared.ingest.structure import SectionWriter
from shared.ingest.text import decode
from shared.knowledge.base import Block


def _inline_text(token: Any) -> str:
    """Plain text of an inline token (emphasis and link markup dropped, code kept)."""
    parts: list[str] = []
    for child in token.children or []:
        if child.type in ("text", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append("\n")
        elif child.type == "image":
            parts.append(child.content or "")
    return "".join(parts).strip()


def parse_markdown(data: bytes) -> tuple[str | None, list[Block]]:
    from markdown_it import MarkdownIt

    text = decode(data, "Markdown")
    if not text.strip():
        raise empty()
    tokens = MarkdownIt("commonmark").enable("table").parse(text)
    writer = SectionWriter()
    in_list_item = 0
    table: list[list[str]] | None = None
    header_rows = 0
    in_head = False
    heading_level = 0
    for n, token in enumerate(tokens):
        if token.type == "heading_open":
            heading_level = int(token.tag[1])
        elif token.type == "inline" and heading_level:
            writer.heading(heading_level, _inline_text(token))
            heading_level = 0
        elif token.type == "table_open":
            table, header_rows = [], 0
        elif token.type == "thead_open":
            in_head = True
        elif token.type == "thead_close":
            in_head = False
        elif token.type == "tr_open" and table is not None:
            table.append([])
            header_rows += in_head
        elif token.type == "inline" and table is not None and tokens[n - 1].type in ("th_open", "td_open"):
            table[-1].append(_inline_text(token))
        elif token.type == "table_close" and table is not None:
            header, rows = (table[0], table[1:]) if header_rows else ([], table)
            writer.table(header, rows)
            table = None
        elif token.type == "list_item_open":
            in_list_item += 1
        elif token.type == "list_item_close":
            in_list_item -= 1
        elif token.type == "inline" and table is None:
            line = _inline_text(token)
            writer.text(f"- {line}" if in_list_item and tokens[n - 2].type == "list_item_open" else line)
        elif token.type in ("fence", "code_block", "html_block"):
            writer.text(token.content.rstrip())
    title, blocks = writer.finish()
    if not blocks:
        raise empty("the Markdown file has no text")
    return title, blocks
