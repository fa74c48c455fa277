"""Answers shaped for messaging platforms: citations as short titles or links, and text split at
sentence boundaries under the platform's length limit (WeChat and WeCom count UTF-8 bytes: 2,048)."""

from __future__ import annotations

import re
from collections.abc import Callable

from shared.channels.base import OutboundCitation

WECHAT_TEXT_LIMIT_BYTES = 2048
_TITLE_CHARS = 24

# A sentence ends after a Chinese terminator (with any closing quotes), after ASCII ones followed by
# whitespace, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[。！？；!?…])[”’」』）)]*|(?<=[.!?;])[\"')\]]*(?=\s)|\n+")


def utf8_length(text: str) -> int:
    return len(text.encode("utf-8"))


def sentences(text: str) -> list[str]:
    """``text`` cut after each sentence end; the pieces joined give ``text`` back."""
    pieces: list[str] = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        end = match.end()
        if end > start:
            pieces.append(text[start:end])
            start = end
    if start < len(text):
        pieces.append(text[start:])
    return pieces


def _hard_cut(piece: str, limit: int, measure: Callable[[str], int]) -> list[str]:
    """A sentence longer than the limit on its own: cut at the last space before it, else anywhere
    (never inside a character)."""
    parts: list[str] = []
    while measure(piece) > limit:
        low, high = 1, len(piece)  # the longest prefix that fits: binary search on its length
        while low < high:
            middle = (low + high + 1) // 2
            if measure(piece[:middle]) <= limit:
                low = middle
            else:
                high = middle - 1
        space = piece.rfind(" ", 0, low)
        cut = space + 1 if space > low // 2 else low
        parts.append(piece[:cut])
        piece = piece[cut:]
    if piece:
        parts.append(piece)
    return parts


def split_reply(
    text: str, limit: int = WECHAT_TEXT_LIMIT_BYTES, measure: Callable[[str], int] = utf8_length
) -> list[str]:
    """``text`` in as few messages as fit under ``limit``, cut only between sentences where possible."""
    if limit <= 0:
        raise ValueError("limit must be positive")
    text = text.strip()
    if not text:
        return []
    parts: list[str] = []
    current = ""
    for sentence in sentences(text):
        pieces = [sentence] if measure(sentence) <= limit else _hard_cut(sentence, limit, measure)
        for piece in pieces:
            if measure(current + piece) <= limit:
                current += piece
            else:
                if current.strip():
                    parts.append(current.strip())
                current = piece
    if current.strip():
        parts.append(current.strip())
    return parts


def short_title(title: str, limit: int = _TITLE_CHARS) -> str:
    title = " ".join(title.split())
    return title if len(title) <= limit else title[: limit - 1].rstrip() + "…"


def citation_lines(citations: list[OutboundCitation], heading: str = "参考") -> str:
    """Sources as a short block: ``参考：\\n1. 《退款政策》 https://…`` (a title without link stays a title)."""
    seen: set[tuple[str, str | None]] = set()
    lines: list[str] = []
    for citation in citations:
        key = (citation.title, citation.url)
        if key in seen:
            continue
        seen.add(key)
        line = f"{len(lines) + 1}. 《{short_title(citation.title)}》"
        if citation.url:
            line += f" {citation.url}"
        lines.append(line)
    if not lines:
        return ""
    return f"{heading}：\n" + "\n".join(lines)


def compose_reply(
    text: str, citations: list[OutboundCitation] | None, limit: int = WECHAT_TEXT_LIMIT_BYTES
) -> list[str]:
    """The answer, then its sources on their own lines, split under ``limit``."""
    block = citation_lines(citations or [])
    full = f"{text.strip()}\n\n{block}" if block else text
    return split_reply(full, limit)
