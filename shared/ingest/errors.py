"""Why a file was refused, with the HTTP status the admin API reports for it."""

from __future__ import annotations

from shared.errors import BadRequest


class FileRejected(BadRequest):
    """A file that cannot become knowledge. ``status``: 413 too large, 415 unknown type, 422 empty,
    corrupt or without text."""

    def __init__(self, message: str, status: int = 422, code: str = "unprocessable_file") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def too_large(size: int, limit: int) -> FileRejected:
    return FileRejected(f"the file has {size} bytes; the limit is {limit} bytes", 413, "file_too_large")


def unsupported(detail: str) -> FileRejected:
    return FileRejected(detail, 415, "unsupported_file_type")


def empty(detail: str = "the file is empty") -> FileRejected:
    return FileRejected(detail, 422, "empty_file")


def corrupt(kind: str, error: BaseException | str) -> FileRejected:
    reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
    return FileRejected(f"cannot read this {kind} file: {reason}", 422, "corrupt_file")
