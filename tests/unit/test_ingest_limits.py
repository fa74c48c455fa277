"""Upload bombs (issue 11): zip-level checks before a parser opens the file, structural caps while it
reads, and a child process with a deadline and a memory limit around each parse. Every refusal is a
413 that names the limit."""

from __future__ import annotations

import time

import pytest

from shared.ingest import FileRejected, parse_file
from shared.ingest.docx import MAX_PARAGRAPHS
from shared.ingest.faq import MAX_COLUMNS, MAX_SCANNED_CELLS
from shared.ingest.limits import ParseLimits, run_bounded
from tests.support.knowledge_samples import make_docx, make_xlsx
from tests.support.upload_bombs import (
    docx_expanding_to,
    docx_with_empty_paragraphs,
    docx_with_paragraphs,
    xlsx_with_far_cell,
    xlsx_with_rows,
    zip_with_entries,
)

LIMIT = 20 * 1024 * 1024


def refused(name: str, data: bytes, limits: ParseLimits | None = None) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        parse_file(name, data, max_bytes=LIMIT, limits=limits)
    assert caught.value.status == 413 and caught.value.code == "file_too_complex"
    return caught.value


@pytest.mark.parametrize("reference", ["ALL100000", "XFD1048576"])
def test_a_tiny_workbook_with_one_far_cell_is_refused_by_its_columns_not_read(reference: str) -> None:
    data = xlsx_with_far_cell(reference)
    assert len(data) < 8 * 1024
    error = refused("far.xlsx", data)
    assert f"at most {MAX_COLUMNS} columns" in error.message


def test_every_cell_read_counts_even_empty_ones() -> None:
    # 10,000 rows whose only value sits in column 200 (GR): each row is read as 200 cells.
    rows = MAX_SCANNED_CELLS // 200 + 1
    error = refused("wide.xlsx", xlsx_with_rows(rows, column="GR"))
    assert f"more than {MAX_SCANNED_CELLS} cells" in error.message


def test_a_sheet_without_a_declared_dimension_is_still_read() -> None:
    document = parse_file("rows.xlsx", xlsx_with_rows(50), max_bytes=LIMIT)
    [block] = document.blocks
    assert block.kind == "table" and block.header == ["r1"] and len(block.rows) == 49


def test_a_flood_of_empty_paragraphs_is_refused_by_its_compression_ratio() -> None:
    error = refused("empty.docx", docx_with_empty_paragraphs(200_000))
    assert "word/document.xml expands" in error.message and "the limit is 100 times" in error.message


def test_too_many_paragraphs_are_refused_before_python_docx_walks_them() -> None:
    error = refused("long.docx", docx_with_paragraphs(MAX_PARAGRAPHS + 1))
    assert f"{MAX_PARAGRAPHS + 1} paragraphs; the limit is {MAX_PARAGRAPHS}" in error.message


def test_a_file_expanding_past_the_total_is_refused_before_it_is_unpacked() -> None:
    data = docx_expanding_to(200)
    assert len(data) < 300 * 1024
    error = refused("bomb.docx", data)
    assert "expands to" in error.message and f"the limit is {64 * 1024 * 1024} bytes" in error.message


def test_an_archive_with_too_many_entries_is_refused() -> None:
    error = refused("parts.docx", zip_with_entries(50), ParseLimits(max_zip_entries=40))
    assert "entries; the limit is 40" in error.message


def test_ordinary_office_files_pass_every_check() -> None:
    docx = parse_file("handbook.docx", make_docx("Handbook", [("Leave", ["25 days."])]), max_bytes=LIMIT)
    xlsx = parse_file("faq.xlsx", make_xlsx({"FAQ": [["question", "answer"], ["Hours?", "9 to 5"]]}), max_bytes=LIMIT)
    assert "25 days." in docx.blocks[-1].text and xlsx.blocks[0].questions == ["Hours?"]


def _sleep() -> None:
    time.sleep(30)


def _allocate() -> bytes:
    return bytes(2 * 1024 * 1024 * 1024)


def _reject() -> None:
    raise FileRejected("the workbook has no rows", 422, "empty_file")


def test_a_parse_past_its_deadline_is_stopped_with_413() -> None:
    started = time.monotonic()
    with pytest.raises(FileRejected) as caught:
        run_bounded(_sleep, ParseLimits(seconds=0.5), "DOCX")
    assert time.monotonic() - started < 10
    assert caught.value.status == 413 and "took longer than the limit of 0.5 s" in caught.value.message


def test_a_parse_past_its_memory_limit_is_stopped_with_413() -> None:
    with pytest.raises(FileRejected) as caught:
        run_bounded(_allocate, ParseLimits(memory_bytes=256 * 1024 * 1024), "XLSX")
    assert caught.value.status == 413 and "memory limit of 256 MB" in caught.value.message


def test_a_refusal_inside_the_child_keeps_its_status_and_code() -> None:
    with pytest.raises(FileRejected) as caught:
        run_bounded(_reject, ParseLimits(), "XLSX")
    assert (caught.value.status, caught.value.code) == (422, "empty_file")
