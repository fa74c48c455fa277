"""Plain text: decoding (UTF-8, UTF-16 with BOM, GB18030 for Chinese files saved by older tools) and
paragraphs."""

from __future__ import annotations

from shared.ingest.errors import corrupt, empty
from shared.knowledge.base import Block

_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


def decode(data: bytes, kind: str = "text") -> str:
    """The text of a file, or FileRejected when it is not text in a known encoding."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            return data.decode(encoding, errors="replace")
    if b"\x00" in data[:4096]:
        raise corrupt(kind, "it contains NUL bytes (a binary file?)")
    for encoding in ("utf-8", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise corrupt(kind, "it is neither UTF-8 nor GB18030 text")


def parse_text(data: bytes) -> tuple[str | None, list[Block]]:
    text = decode(data).replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise empty("the file has no text")
    return None, [Block(kind="text", text=text)]
