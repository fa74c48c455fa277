"""Spreadsheets and FAQ files: CSV, XLSX and JSON.

A sheet whose header names a question and an answer column is a FAQ: one Q/A block per row (optional
columns: other phrasings of the question, a category, a URL). Any other sheet is a table: its header
is kept with every chunk of its rows. Column names are recognised in English and Chinese.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any

from shared.ingest.errors import FileRejected, corrupt, empty
from shared.ingest.text import decode
from shared.knowledge.base import Block

_QUESTION = {"question", "questions", "q", "query", "faq", "问题", "问", "标准问题", "提问"}
_ANSWER = {"answer", "answers", "a", "response", "reply", "答案", "答", "回答", "回复", "解答"}
_ALTERNATIVES = {
    "alternatives",
    "alternativequestions",
    "similarquestions",
    "similar",
    "variants",
    "paraphrases",
    "otherquestions",
    "相似问题",
    "相似问",
    "同义问题",
    "其他问法",
}
_SECTION = {"category", "section", "topic", "group", "分类", "类别", "栏目", "类目"}
_ALTERNATIVE_SPLIT = re.compile(r"\s*(?:\n|\|)\s*")
MAX_ROWS = 100_000
# A workbook's cells are read as a stream with these caps, never trusting its declared dimension
# (one cell at XFD1048576 declares a 17-billion-cell sheet).
MAX_COLUMNS = 256
MAX_SCANNED_CELLS = 2_000_000


def _key(name: object) -> str:
    return re.sub(r"[\s_\-]+", "", str(name or "").strip().lower())


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # 3.0 from a spreadsheet is the 3 someone typed
    return str(value).strip()


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for position, name in enumerate(header):
        key = _key(name)
        for role, names in (("q", _QUESTION), ("a", _ANSWER), ("alt", _ALTERNATIVES), ("section", _SECTION)):
            if key in names and role not in found:
                found[role] = position
    return found


def _looks_like_question(text: str) -> bool:
    return text.rstrip().endswith(("?", "？"))


def sheet_blocks(rows: list[list[str]], section: str | None = None) -> list[Block]:
    """Blocks of one sheet: FAQ pairs when the header names question and answer columns, else a table."""
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    if not rows:
        return []
    if len(rows) > MAX_ROWS:
        raise FileRejected(f"a sheet has {len(rows)} rows; at most {MAX_ROWS} are accepted")
    width = max(len(row) for row in rows)
    rows = [row + [""] * (width - len(row)) for row in rows]
    header, body = rows[0], rows[1:]
    columns = _columns(header)
    if "q" not in columns and width == 2 and _looks_like_question(header[0]):
        columns, body = {"q": 0, "a": 1}, rows  # a headerless two-column FAQ
    if "q" in columns and "a" in columns:
        blocks = []
        for row in body:
            question, answer = row[columns["q"]].strip(), row[columns["a"]].strip()
            if not question:
                continue
            others = _ALTERNATIVE_SPLIT.split(row[columns["alt"]]) if "alt" in columns else []
            category = row[columns["section"]].strip() if "section" in columns else ""
            blocks.append(
                Block(
                    kind="qa",
                    questions=[question, *(q for q in others if q.strip())],
                    text=answer,
                    section=f"{category}: {question}" if category else None,
                )
            )
        return blocks
    if not body:
        return [Block(kind="text", text=" | ".join(header), section=section)]
    return [Block(kind="table", header=header, rows=body, section=section)]


def parse_csv(data: bytes) -> tuple[str | None, list[Block]]:
    text = decode(data, "CSV")
    if not text.strip():
        raise empty()
    try:
        dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    try:
        rows = [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), dialect)]
    except csv.Error as error:
        raise corrupt("CSV", error) from None
    blocks = sheet_blocks(rows)
    if not blocks:
        raise empty("the CSV file has no rows")
    return None, blocks


def parse_xlsx(data: bytes) -> tuple[str | None, list[Block]]:
    import zipfile

    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    try:
        workbook = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as error:
        raise corrupt("XLSX", error) from None
    try:
        blocks: list[Block] = []
        sheets = workbook.worksheets
        budget = _CellBudget()
        for sheet in sheets:
            rows = budget.rows(sheet)
            # One sheet: no need to name it; several: the sheet name is the section.
            blocks.extend(sheet_blocks(rows, section=sheet.title if len(sheets) > 1 else None))
        title = workbook.properties.title if workbook.properties and workbook.properties.title else None
    except (KeyError, ValueError, TypeError) as error:
        raise corrupt("XLSX", error) from None
    finally:
        workbook.close()
    if not blocks:
        raise empty("the workbook has no rows")
    return title, blocks


class _CellBudget:
    """Reads a workbook's rows while counting: non-empty rows per sheet, columns that hold a value,
    and every cell read (empty ones cost time too)."""

    def __init__(self) -> None:
        self.scanned = 0

    def rows(self, sheet: Any) -> list[list[str]]:
        from shared.ingest.limits import too_complex

        sheet.reset_dimensions()  # rows come as stored, not padded to the declared dimension
        rows: list[list[str]] = []
        for row in sheet.iter_rows(values_only=True):
            self.scanned += len(row) + 1
            if self.scanned > MAX_SCANNED_CELLS:
                raise too_complex(f"the workbook has more than {MAX_SCANNED_CELLS} cells; that is the limit")
            cells = [_cell(value) for value in row]
            while cells and not cells[-1]:
                cells.pop()
            if not cells:
                continue
            if len(cells) > MAX_COLUMNS:
                raise too_complex(
                    f"sheet {sheet.title!r} has a value in column {len(cells)}; at most {MAX_COLUMNS} columns are read"
                )
            rows.append(cells)
            if len(rows) > MAX_ROWS:
                raise too_complex(f"sheet {sheet.title!r} has more than {MAX_ROWS} rows; that is the limit")
        return rows


_LIST_KEYS = ("faq", "faqs", "items", "questions", "qa", "data", "entries")


def _first(item: dict[str, Any], names: set[str]) -> Any:
    for key, value in item.items():
        if _key(key) in names:
            return value
    return None


def parse_json(data: bytes) -> tuple[str | None, list[Block]]:
    text = decode(data, "JSON")
    if not text.strip():
        raise empty()
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as error:
        raise corrupt("JSON", f"{error.msg} at line {error.lineno}") from None
    title = None
    if isinstance(payload, dict):
        title = payload.get("title") if isinstance(payload.get("title"), str) else None
        payload = next((payload[key] for key in _LIST_KEYS if isinstance(payload.get(key), list)), None)
    if not isinstance(payload, list):
        raise FileRejected('a JSON file must hold a list of {"question": ..., "answer": ...} objects')
    blocks = []
    for position, item in enumerate(payload):
        if not isinstance(item, dict):
            raise FileRejected(f"item {position} is not an object with a question and an answer")
        question, answer = _first(item, _QUESTION), _first(item, _ANSWER)
        if isinstance(question, list):  # "questions": [main, other phrasings...]
            question, others = (question[0] if question else ""), [str(q) for q in question[1:]]
        else:
            others = []
        alternatives = _first(item, _ALTERNATIVES)
        if isinstance(alternatives, list):
            others += [str(q) for q in alternatives]
        elif isinstance(alternatives, str):
            others += _ALTERNATIVE_SPLIT.split(alternatives)
        if not isinstance(question, str) or not question.strip() or answer is None:
            raise FileRejected(f"item {position} needs a non-empty question and an answer")
        if isinstance(answer, list):
            answer = "\n".join(str(part) for part in answer)
        category = _first(item, _SECTION)
        blocks.append(
            Block(
                kind="qa",
                questions=[question.strip(), *(q.strip() for q in others if q.strip())],
                text=str(answer).strip(),
                section=f"{category}: {question.strip()}" if isinstance(category, str) and category.strip() else None,
            )
        )
    if not blocks:
        raise empty("the JSON file has no questions")
    return title, blocks
