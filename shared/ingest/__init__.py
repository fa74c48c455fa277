"""Turning uploaded files into knowledge documents: format detection, parsing, structure.

``parse_file(name, data)`` returns a ``Document`` whose ``blocks`` keep the file's structure (FAQ
pairs, tables with their header, sections under headings, PDF pages), which the chunker
(shared/knowledge/chunking.py) then respects. Each format's library is imported only when a file of
that format is parsed.
"""

from shared.ingest.files import SUPPORTED_EXTENSIONS, FileRejected, detect_format, parse_file

__all__ = ["SUPPORTED_EXTENSIONS", "FileRejected", "detect_format", "parse_file"]
