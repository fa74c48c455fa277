"""Bounds on what one uploaded file may cost to parse.

Office files are zip archives, so a few KB can declare gigabytes. Three layers keep an upload from
exhausting the admin function:

1. ``check_archive``: before any parser opens a .docx/.xlsx, the zip's central directory is read
   (entries, declared sizes) and refused when it has too many entries, expands past a total, or an
   entry compresses suspiciously well. Python's zipfile never inflates an entry past its declared
   size (and fails its CRC if the data is longer), so the declared sizes bind the parsers.
2. Structural caps inside the parsers (rows, columns and cells of a sheet; paragraphs and table
   cells of a document), counted while streaming, before the work they would cause.
3. ``run_bounded``: the parser runs in a forked child process with an address-space limit and a
   wall-clock deadline; the parent kills it when either is hit. fork + a pipe work in Lambda (no
   /dev/shm is needed, unlike multiprocessing pools), and a child's memory is released when it ends.

Every refusal is a ``FileRejected`` 413 (``file_too_complex``) that names the limit.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from shared.ingest.errors import FileRejected

_MB = 1024 * 1024


@dataclass(frozen=True)
class ParseLimits:
    """Per-file limits (the admin API builds them from settings)."""

    max_zip_entries: int = 2000
    max_unpacked_bytes: int = 64 * _MB
    # Ratio uncompressed/compressed of one entry; only entries above ``ratio_floor_bytes`` are judged
    # (a small entry cannot cost much whatever its ratio). 100 is Apache POI's default.
    max_compression_ratio: float = 100.0
    ratio_floor_bytes: int = 1 * _MB
    seconds: float = 20.0
    # Extra address space the parsing child may map beyond what it inherits; 0: no memory limit.
    memory_bytes: int = 768 * _MB
    # False parses in this process (the archive and structure checks still apply).
    isolated: bool = True


def too_complex(detail: str) -> FileRejected:
    return FileRejected(detail, 413, "file_too_complex")


def check_archive(data: bytes, limits: ParseLimits) -> None:
    """Refuse a zip-based file whose directory promises more than the limits allow (nothing inflated)."""
    try:
        entries = zipfile.ZipFile(BytesIO(data)).infolist()
    except zipfile.BadZipFile:
        return  # the parser reports the damage
    if len(entries) > limits.max_zip_entries:
        raise too_complex(f"the archive has {len(entries)} entries; the limit is {limits.max_zip_entries}")
    total = sum(entry.file_size for entry in entries)
    if total > limits.max_unpacked_bytes:
        raise too_complex(
            f"the file expands to {total} bytes when unpacked; the limit is {limits.max_unpacked_bytes} bytes"
        )
    for entry in entries:
        if entry.file_size <= limits.ratio_floor_bytes:
            continue
        ratio = entry.file_size / max(entry.compress_size, 1)
        if ratio > limits.max_compression_ratio:
            raise too_complex(
                f"{entry.filename} expands {ratio:.0f} times when unpacked; "
                f"the limit is {limits.max_compression_ratio:.0f} times"
            )


def _address_space_in_use() -> int | None:
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None  # not Linux: the deadline still applies


def _child(connection: Any, work: Callable[[], Any], memory_bytes: int) -> None:
    import resource

    if memory_bytes:
        in_use = _address_space_in_use()
        if in_use is not None:
            limit = in_use + memory_bytes
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        connection.send(("ok", work()))
    except FileRejected as error:
        connection.send(("rejected", (error.message, error.status, error.code)))
    except MemoryError:
        connection.send(("memory", None))
    except Exception as error:  # a parser bug on hostile input must not kill the request
        connection.send(("error", f"{type(error).__name__}: {error}"[:200]))
    finally:
        connection.close()


def run_bounded(work: Callable[[], Any], limits: ParseLimits, what: str) -> Any:
    """``work()`` in a forked child within ``limits.seconds`` and ``limits.memory_bytes``; its result
    (pickled back), or the FileRejected it raised, or a 413 naming the limit it hit."""
    if not limits.isolated:
        return work()
    import multiprocessing

    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(sender, work, limits.memory_bytes), daemon=True)
    child.start()
    sender.close()
    memory_mb = limits.memory_bytes // _MB
    try:
        if not receiver.poll(limits.seconds):
            raise too_complex(f"parsing this {what} took longer than the limit of {limits.seconds:g} s")
        try:
            status, payload = receiver.recv()
        except EOFError:  # the child died without a word: killed for memory (or a crash in C code)
            raise too_complex(
                f"parsing this {what} needed more than the memory limit of {memory_mb} MB"
            ) from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()
    if status == "ok":
        return payload
    if status == "rejected":
        message, code_status, code = payload
        raise FileRejected(message, code_status, code)
    if status == "memory":
        raise too_complex(f"parsing this {what} needed more than the memory limit of {memory_mb} MB")
    raise FileRejected(f"cannot read this {what} file: {payload}", 422, "corrupt_file")
