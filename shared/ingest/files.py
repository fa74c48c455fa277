"""One uploaded file -> one Document: size limits, format detection, parsing, identity."""

from __future__ import annotations

import importlib
import posixpath
import re
import zipfile
from collections.abc import Callable
from io import BytesIO

from pydantic import ValidationError

from shared.errors import describe_validation_error
from shared.ingest.errors import FileRejected, corrupt, empty, too_large, unsupported
from shared.ingest.limits import ParseLimits, check_archive, run_bounded
from shared.knowledge.base import Block, Document

Parser = Callable[[bytes], tuple[str | None, list[Block]]]

EXTENSIONS: dict[str, str] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".json": "json",
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
    ".text": "text",
    ".pdf": "pdf",
    ".docx": "docx",
}
SUPPORTED_EXTENSIONS = tuple(sorted(EXTENSIONS))
_LEGACY = {".doc": ".docx", ".xls": ".xlsx", ".ppt": None, ".pptx": None, ".rtf": ".docx", ".pages": ".docx"}
_ZIP_FORMATS = {"docx": "word/", "xlsx": "xl/"}
_UNSAFE_ID = re.compile(r"[\x00-\x1f\x7f]")
# Each format's library, imported by the parent before a parser is forked off (an import begun in
# the child could wait forever on an import lock another thread held at the fork).
_LIBRARIES: dict[str, tuple[str, ...]] = {
    "xlsx": ("openpyxl",),
    "docx": ("docx",),
    "pdf": ("pypdf",),
    "markdown": ("markdown_it",),
    "html": ("lxml.etree", "lxml.html"),
}


def _parser(kind: str) -> Parser:
    # Imported on demand: each format's library is loaded only when a file of that format arrives.
    if kind == "csv":
        from shared.ingest.faq import parse_csv

        return parse_csv
    if kind == "xlsx":
        from shared.ingest.faq import parse_xlsx

        return parse_xlsx
    if kind == "json":
        from shared.ingest.faq import parse_json

        return parse_json
    if kind == "markdown":
        from shared.ingest.markdown import parse_markdown

        return parse_markdown
    if kind == "html":
        from shared.ingest.html import parse_html

        return parse_html
    if kind == "pdf":
        from shared.ingest.pdf import parse_pdf

        return parse_pdf
    if kind == "docx":
        from shared.ingest.docx import parse_docx

        return parse_docx
    from shared.ingest.text import parse_text

    return parse_text


def _sniff(data: bytes) -> str | None:
    head = data[:1024].lstrip()
    if head.startswith(b"%PDF-"):
        return "pdf"
    if data.startswith(b"PK\x03\x04"):
        try:
            names = zipfile.ZipFile(BytesIO(data)).namelist()
        except zipfile.BadZipFile:
            return None
        for kind, prefix in _ZIP_FORMATS.items():
            if any(name.startswith(prefix) for name in names):
                return kind
        return None
    lowered = head[:200].lower()
    if lowered.startswith((b"<!doctype html", b"<html")):
        return "html"
    return None


def detect_format(filename: str, data: bytes) -> str:
    """The format of an upload: by extension, checked against the content; without one, sniffed."""
    extension = posixpath.splitext(filename.lower())[1]
    if extension in _LEGACY:
        better = _LEGACY[extension]
        hint = f"; save it as {better}" if better else "; export it as PDF"
        raise unsupported(f"{extension} files are not supported{hint}")
    kind = EXTENSIONS.get(extension)
    sniffed = _sniff(data)
    if kind is None:
        if extension:
            raise unsupported(f"unsupported file type {extension!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}")
        return sniffed or "text"
    if kind in ("pdf", "docx", "xlsx") and sniffed != kind:
        raise corrupt(kind.upper(), f"the content is not a {kind.upper()} file")
    return kind


def document_id_for(filename: str) -> str:
    """A stable id from the file's name, so uploading the same file again replaces it."""
    name = posixpath.basename(filename.replace("\\", "/")).strip()
    name = _UNSAFE_ID.sub("", name)
    if not name:
        raise FileRejected("the file has no name; give it one (or a documentId)")
    return name[-256:]


def parse_file(
    filename: str,
    data: bytes,
    *,
    max_bytes: int,
    document_id: str | None = None,
    title: str | None = None,
    url: str | None = None,
    limits: ParseLimits | None = None,
) -> Document:
    """The file as a Document (blocks keep its structure), or FileRejected saying why not. Parsing
    is bounded by ``limits`` (shared/ingest/limits.py): archive checks first, then a child process
    with a deadline and a memory limit."""
    limits = limits or ParseLimits()
    if len(data) > max_bytes:
        raise too_large(len(data), max_bytes)
    if not data.strip():
        raise empty()
    kind = detect_format(filename, data)
    if kind in _ZIP_FORMATS:
        check_archive(data, limits)
    parser = _parser(kind)
    if limits.isolated:
        for module in _LIBRARIES.get(kind, ()):
            importlib.import_module(module)
    label = kind if kind in ("markdown", "text") else kind.upper()
    found_title, blocks = run_bounded(lambda: parser(data), limits, label)
    identifier = document_id or document_id_for(filename)
    fallback = posixpath.splitext(posixpath.basename(identifier))[0] or identifier
    try:
        return Document(id=identifier, title=(title or found_title or fallback)[:512], url=url, blocks=blocks)
    except ValidationError as error:
        raise FileRejected(describe_validation_error(error, whole="document", most=1)) from None
