"""shared/ingest: every supported format parsed from real files (generated here), and every way a file
is refused (with the status the admin API reports)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.ingest import FileRejected, detect_format, parse_file
from shared.knowledge.chunking import chunk_document
from tests.support.knowledge_samples import (
    FAQ_PAIRS,
    HTML,
    MARKDOWN,
    faq_csv,
    faq_json,
    make_docx,
    make_pdf,
    make_xlsx,
    price_table_rows,
)

LIMIT = 5 * 1024 * 1024
REPO = Path(__file__).resolve().parents[2]


def refused(name: str, data: bytes, limit: int = LIMIT) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        parse_file(name, data, max_bytes=limit)
    return caught.value


def test_pdf_pages_become_sections_with_the_text_layer() -> None:
    data = make_pdf([["Return policy", "Items can be returned within 30 days."], ["Warranty: two years."]], "Policies")
    document = parse_file("policies.pdf", data, max_bytes=LIMIT)
    assert (document.id, document.title) == ("policies.pdf", "Policies")
    chunks = chunk_document(document)
    assert [c.section for c in chunks] == ["page 1", "page 2"]
    assert "returned within 30 days" in chunks[0].text and "two years" in chunks[1].text


def test_docx_headings_become_sections_and_tables_keep_their_header() -> None:
    data = make_docx(
        "Staff handbook",
        [("Holidays", ["Everyone gets 25 days of paid leave."]), ("Sick leave", ["Tell your manager by 9 am."])],
        table=[["Grade", "Days"], *[[f"G{n}", str(20 + n)] for n in range(3)]],
    )
    document = parse_file("handbook.docx", data, max_bytes=LIMIT)
    assert document.title == "Staff handbook"
    chunks = chunk_document(document)
    by_section = {c.section: c for c in chunks if c.kind == "text"}
    assert "25 days" in by_section["Holidays"].text and "9 am" in by_section["Sick leave"].text
    (table,) = [c for c in chunks if c.kind == "table"]
    assert table.text.splitlines()[0] == "| Grade | Days |"
    assert "| G2 | 22 |" in table.text


def test_xlsx_faq_sheet_gives_qa_pairs_and_other_sheets_stay_tables() -> None:
    data = make_xlsx(
        {
            "FAQ": [
                ["Question", "Answer", "Similar questions"],
                ["How long is delivery?", "3 working days", "When does it arrive?\nDelivery time"],
                ["Do you ship abroad?", "Yes, to 7 countries", None],
            ],
            "Prices": [["Model", "Price", "Warranty"], *price_table_rows(3)],
        }
    )
    chunks = chunk_document(parse_file("shop.xlsx", data, max_bytes=LIMIT))
    qa = [c for c in chunks if c.kind == "qa"]
    assert [c.leads for c in qa] == [
        ("How long is delivery?", "When does it arrive?", "Delivery time"),
        ("Do you ship abroad?",),
    ]
    assert qa[0].text == "How long is delivery?\n3 working days"
    (table,) = [c for c in chunks if c.kind == "table"]
    assert table.section == "Prices" and table.text.startswith("| Model | Price | Warranty |")


def test_faq_csv_with_english_or_chinese_headers_and_without_a_header() -> None:
    chunks = chunk_document(parse_file("faq.csv", faq_csv(), max_bytes=LIMIT))
    assert [c.leads[0] for c in chunks] == [q for q, _, _ in FAQ_PAIRS]
    assert chunks[0].leads[1] == "When will my parcel arrive?"
    assert chunks[0].section == "Orders: How long does delivery take?"
    assert all(c.kind == "qa" and c.text.endswith(a) for c, (_, a, _) in zip(chunks, FAQ_PAIRS, strict=True))

    chinese = "问题,答案\n怎么开发票？,下单时勾选开具发票。\n".encode()
    (zh,) = chunk_document(parse_file("常见问题.csv", chinese, max_bytes=LIMIT))
    assert zh.leads == ("怎么开发票？",) and zh.text == "怎么开发票？\n下单时勾选开具发票。"

    headerless = b"Can I pay by card?,Yes: Visa and Mastercard.\nIs there a shop?,Yes in Hangzhou.\n"
    assert len(chunk_document(parse_file("faq2.csv", headerless, max_bytes=LIMIT))) == 2


def test_a_csv_that_is_not_a_faq_is_a_table_whose_header_repeats_in_every_chunk() -> None:
    rows = price_table_rows(120)
    data = ("model,price,warranty\n" + "\n".join(",".join(r) for r in rows)).encode()
    chunks = chunk_document(parse_file("prices.csv", data, max_bytes=LIMIT))
    assert len(chunks) > 1 and all(c.kind == "table" for c in chunks)
    assert all(c.text.splitlines()[0] == "| model | price | warranty |" for c in chunks)
    body = [line for c in chunks for line in c.text.splitlines()[1:]]
    assert body == [f"| {' | '.join(r)} |" for r in rows]  # every row once, none cut


def test_faq_json_lists_and_wrapped_lists() -> None:
    chunks = chunk_document(parse_file("faq.json", faq_json(), max_bytes=LIMIT))
    assert [c.leads for c in chunks][0] == ("How long does delivery take?", "When will my parcel arrive?")
    wrapped = json.dumps({"title": "Help", "faqs": [{"q": "Hours?", "a": "9 to 5", "category": "Store"}]}).encode()
    document = parse_file("help.json", wrapped, max_bytes=LIMIT)
    assert document.title == "Help"
    assert chunk_document(document)[0].section == "Store: Hours?"
    several = json.dumps([{"questions": ["Main?", "Other way?"], "answer": ["line 1", "line 2"]}]).encode()
    (chunk,) = chunk_document(parse_file("x.json", several, max_bytes=LIMIT))
    assert chunk.leads == ("Main?", "Other way?") and chunk.text == "Main?\nline 1\nline 2"


def test_markdown_headings_tables_and_lists() -> None:
    document = parse_file("help.md", MARKDOWN.encode(), max_bytes=LIMIT)
    assert document.title == "Acme help centre"
    chunks = chunk_document(document)
    sections = {c.section for c in chunks}
    assert {"Shipping", "Shipping > International", "Prices"} <= sections
    (table,) = [c for c in chunks if c.kind == "table"]
    assert table.text.splitlines() == [
        "| Model | Price | Warranty |",
        "| Kettle K1 | 39.00 | 2 years |",
        "| Kettle K2 | 59.00 | 3 years |",
    ]
    assert any("- Prices include VAT." in c.text for c in chunks)
    assert all(c.title == "Acme help centre" for c in chunks)


def test_html_drops_scripts_and_navigation_and_reads_faq_markup() -> None:
    document = parse_file("faq.html", HTML.encode(), max_bytes=LIMIT)
    assert document.title == "Acme FAQ"
    chunks = chunk_document(document)
    everything = "\n".join(c.text for c in chunks)
    assert "tracking" not in everything and "color: red" not in everything and "Home" not in everything
    assert "Copyright" not in everything
    questions = {c.leads[0]: c for c in chunks if c.kind == "qa"}
    assert questions["Can I pay on delivery?"].text.endswith("Cash on delivery is available in mainland China.")
    assert "Is the warranty transferable?" in questions
    (table,) = [c for c in chunks if c.kind == "table"]
    assert table.section == "Warranty" and table.text.startswith("| Product | Warranty |")


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"Delivery takes 3 days.", "Delivery takes 3 days."),
        ("退款三天到账。".encode("gb18030"), "退款三天到账。"),
        ("Ünïcode text".encode("utf-16"), "Ünïcode text"),
        ("\ufeffWith a BOM".encode(), "With a BOM"),
    ],
)
def test_plain_text_encodings(data: bytes, expected: str) -> None:
    (chunk,) = chunk_document(parse_file("notes.txt", data, max_bytes=LIMIT))
    assert chunk.text == expected and chunk.title == "notes"


def test_explicit_id_title_and_url_win() -> None:
    document = parse_file(
        "dir/sub/a.md", b"# Inside\n\ntext", max_bytes=LIMIT, document_id="doc-1", title="T", url="https://x/y"
    )
    assert (document.id, document.title, document.url) == ("doc-1", "T", "https://x/y")
    assert parse_file("dir\\sub\\b.txt", b"text", max_bytes=LIMIT).id == "b.txt"


# --- refusals ---


def test_unknown_and_legacy_types_are_415() -> None:
    unknown = refused("photo.png", b"\x89PNG\r\n\x1a\n....")
    assert (unknown.status, unknown.code) == (415, "unsupported_file_type")
    assert ".pdf" in unknown.message
    legacy = refused("old.doc", b"\xd0\xcf\x11\xe0 legacy word")
    assert legacy.status == 415 and ".docx" in legacy.message


def test_empty_and_oversized_files() -> None:
    assert refused("a.txt", b"").status == 422
    assert refused("a.txt", b"   \n ").code == "empty_file"
    large = refused("a.txt", b"x" * 101, limit=100)
    assert (large.status, large.code) == (413, "file_too_large") and "100" in large.message


@pytest.mark.parametrize(
    ("name", "data", "reason"),
    [
        ("broken.pdf", b"%PDF-1.4\n1 0 obj << /Type /Catalog", "PDF"),
        ("fake.pdf", b"this is not a pdf at all", "PDF"),
        ("fake.docx", b"plain text pretending", "DOCX"),
        ("fake.xlsx", b"PK\x03\x04 truncated zip", "XLSX"),
        ("broken.json", b'[{"question": "a", "answer":', "JSON"),
    ],
)
def test_corrupt_files_are_422_with_the_reason(name: str, data: bytes, reason: str) -> None:
    error = refused(name, data)
    assert error.status == 422 and reason in error.message
    assert "Traceback" not in error.message


def test_a_pdf_without_a_text_layer_is_refused_with_that_reason() -> None:
    error = refused("scan.pdf", make_pdf([[], []]))
    assert error.status == 422 and "text layer" in error.message


def test_a_json_file_that_is_not_a_faq_says_what_it_must_be() -> None:
    assert "question" in refused("x.json", b'{"hello": 1}').message
    assert "item 0" in refused("x.json", b'[{"question": "", "answer": "x"}]').message


def test_detect_format_sniffs_files_without_an_extension() -> None:
    assert detect_format("upload", make_pdf([["Hello there, a sniffed file."]])) == "pdf"
    assert detect_format("upload", make_docx("T", [("H", ["p"])])) == "docx"
    assert detect_format("upload", b"<!DOCTYPE html><html></html>") == "html"
    assert detect_format("upload", b"just words") == "text"


def test_each_format_library_is_imported_only_when_its_format_is_parsed() -> None:
    code = (
        "import sys\n"
        "from shared.ingest import parse_file\n"
        "parse_file('a.txt', b'hello', max_bytes=100)\n"
        "parse_file('a.csv', b'question,answer\\nq?,a', max_bytes=100)\n"
        "print(' '.join(m for m in ('pypdf', 'docx', 'openpyxl', 'markdown_it', 'lxml') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == ""


def test_pdf_headings_set_larger_than_the_body_split_a_page_into_sections() -> None:
    data = make_pdf(
        [
            [
                "# Charging",
                "Charge it with the USB-C cable.",
                "A full charge takes 4.5 hours.",
                "# Travel",
                "Carry it on.",
            ]
        ]
    )

    document = parse_file("manual.pdf", data, max_bytes=LIMIT)

    assert [(b.section, b.text) for b in document.blocks or []] == [
        ("page 1 > Charging", "Charge it with the USB-C cable.\nA full charge takes 4.5 hours."),
        ("page 1 > Travel", "Carry it on."),
    ]


def test_a_chinese_manual_is_cut_at_its_headings_and_its_wrapped_lines_are_joined() -> None:
    data = (Path(__file__).parents[1] / "fixtures" / "knowledge" / "powerbank-manual-zh.pdf").read_bytes()

    document = parse_file("powerbank-manual-zh.pdf", data, max_bytes=LIMIT)

    sections = {block.section: block.text for block in document.blocks or []}
    assert document.title == "小蓝充电宝 P20 使用说明书"
    assert list(sections) == [
        "page 1 > 小蓝充电宝 P20 使用说明书",
        "page 1 > 一、产品参数",
        "page 1 > 二、为充电宝充电",
        "page 1 > 三、为手机等设备充电",
        "page 1 > 四、电量指示灯",
        "page 1 > 五、安全注意事项",
        "page 1 > 六、保修",
    ]
    charging = sections["page 1 > 二、为充电宝充电"]
    assert "充满一次大约需要4.5小时" in charging and "\n" not in charging  # "4.5小\n时" joined back
    assert "两颗灯表示25%至50%" in sections["page 1 > 四、电量指示灯"]
