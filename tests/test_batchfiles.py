"""Reading batch files (desktop.files.reader, batchtext, batchxlsx) and writing results
(desktop.batch.writer) on real files: binary files refused, limits checked while reading,
a workbook's declared size never trusted, numbers kept as numbers in XLSX, a BOM in CSV."""

from __future__ import annotations

import codecs
import gzip
import io
import json
import random
import subprocess
import sys
import tracemalloc
import zipfile
from pathlib import Path

import pytest

import desktop.files.table as batchfiles
from desktop.batch.writer import write_results
from desktop.errors import UserError
from desktop.files.reader import read_table
from tests.support import ROOT


def write(path, data: bytes):
    path.write_bytes(data)
    return path


def png_bytes() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def workbook_bytes() -> bytes:
    from openpyxl import Workbook

    book, out = Workbook(), io.BytesIO()
    book.active.append(["id", "text"])
    book.active.append([1, "great"])
    book.save(out)
    return out.getvalue()


def no_nul_noise(size: int) -> bytes:
    """Random bytes without NUL: binary data only the control-character rule can catch."""
    rng = random.Random(5)
    return bytes(rng.randrange(1, 256) for _ in range(size))


# --- not text -----------------------------------------------------------------------------


BINARIES = {
    "a PNG image": png_bytes,
    "a program (ELF)": lambda: Path(sys.executable).read_bytes(),
    "a gzip archive": lambda: gzip.compress(b"text\nhello\n" * 50),
    "a PDF document": lambda: b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog >>\nendobj\n",
    "NUL bytes": lambda: b"text\nhello\x00\x00\x00world\n" * 20,
    "control characters": lambda: no_nul_noise(3000),
}


@pytest.mark.parametrize("kind", list(BINARIES))
@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".txt", ".jsonl"])
def test_a_binary_file_named_as_text_is_refused_in_one_sentence(tmp_path, kind, suffix):
    path = write(tmp_path / f"data{suffix}", BINARIES[kind]())
    with pytest.raises(UserError) as refused:
        read_table(path)
    message = str(refused.value)
    assert message.startswith(f"data{suffix} is not a text file (") and kind in message, message
    assert "\n" not in message and "save it again as CSV UTF-8" in message


def test_a_workbook_saved_as_csv_is_told_to_be_renamed(tmp_path):
    with pytest.raises(
        UserError, match=r"is an Excel workbook saved under the wrong name: rename it to \.xlsx"
    ):
        read_table(write(tmp_path / "sales.csv", workbook_bytes()))


def test_text_with_odd_but_real_characters_still_reads(tmp_path):
    cases = {
        "ansi.txt": ("\x1b[31mERROR\x1b[0m disk full\n" * 30).encode(),
        "smart.csv": "id,text\n1,“Crème brûlée” – naïve… ‘ok’ € Œuvre\n".encode("cp1252"),
        "be.csv": codecs.BOM_UTF16_BE + "id,text\n1,Été\n".encode("utf-16-be"),
        "page.txt": b"first page\x0csecond page\n\x1a",  # a form feed, then DOS's end-of-file mark
        "bom.tsv": codecs.BOM_UTF8 + "id\ttext\n1\tça va\n".encode(),
    }
    texts = {name: read_table(write(tmp_path / name, data)).texts("text") for name, data in cases.items()}
    assert texts["ansi.txt"][0] == "\x1b[31mERROR\x1b[0m disk full"
    assert texts["smart.csv"] == ["“Crème brûlée” – naïve… ‘ok’ € Œuvre"]
    assert texts["be.csv"] == ["Été"] and texts["bom.tsv"] == ["ça va"]
    assert texts["page.txt"] == ["first page\x0csecond page", "\x1a"]


# --- limits, checked while reading ----------------------------------------------------------


def peak_while_reading(path) -> tuple[int, str]:
    """Bytes Python allocated at the peak of read_table(path), and its refusal."""
    tracemalloc.start()
    try:
        with pytest.raises(UserError) as refused:
            read_table(path)
        return tracemalloc.get_traced_memory()[1], str(refused.value)
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize(
    "name, line",
    [("rows.csv", b"7,a\n"), ("rows.tsv", b"7\ta\n"), ("rows.txt", b"a\n"), ("rows.jsonl", b'{"t":"a"}\n')],
)
def test_a_file_past_the_row_limit_is_refused_before_it_is_built(tmp_path, monkeypatch, name, line):
    monkeypatch.setattr(batchfiles, "MAX_ROWS", 1_000)
    path = write(tmp_path / name, line * 400_000)
    peak, message = peak_while_reading(path)
    # The file itself is read into memory; nothing in proportion to its 400,000 rows is built.
    assert peak < path.stat().st_size + 4 * 1024**2, (peak, message)
    assert message.startswith(f"{name} has more than 1,000 rows; Pipedesk reads up to 1,000 at a time.")


def test_blank_rows_at_the_end_do_not_count_against_the_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(batchfiles, "MAX_ROWS", 3)
    assert len(read_table(write(tmp_path / "t.csv", b"id,text\n1,a\n2,b\n3,c\n,\n , \n\n\n")).rows) == 3
    assert len(read_table(write(tmp_path / "t.txt", b"a\n\nc\n \n\xc2\xa0\n\n")).rows) == 3
    with pytest.raises(UserError, match="more than 3 rows"):
        read_table(write(tmp_path / "u.csv", b"id,text\n1,a\n,\n,\n4,d\n"))


def test_too_many_columns_are_refused_in_every_text_format(tmp_path):
    wide = ",".join(f"c{i}" for i in range(1_001)).encode()
    cases = {
        "wide.csv": wide + b"\n" + b"x," * 1_000 + b"x\n",
        "wide.tsv": wide.replace(b",", b"\t") + b"\n1\n",
        # Every line adds a key: 2,000 columns that every row would be padded to.
        "keys.jsonl": b"".join(b'{"k%d": 1}\n' % i for i in range(2_000)),
    }
    for name, data in cases.items():
        with pytest.raises(
            UserError, match=f"^{name} has more than 1,000 columns; Pipedesk reads up to 1,000"
        ):
            read_table(write(tmp_path / name, data))


def test_a_row_of_a_million_commas_is_refused_before_csv_splits_it(tmp_path):
    path = write(tmp_path / "commas.csv", b"id,text\n1,hello\n" + b"," * 1_000_000 + b"\n")
    peak, message = peak_while_reading(path)
    assert "has more than 1,000 columns" in message
    assert peak < path.stat().st_size + 4 * 1024**2, peak


def test_rows_times_columns_is_limited_too(tmp_path, monkeypatch):
    monkeypatch.setattr(batchfiles, "MAX_CELLS", 1_000)
    data = b"a,b,c,d,e,f,g,h,i,j\n" + b"1,2,3,4,5,6,7,8,9,10\n" * 150
    with pytest.raises(UserError, match=r"has more than 1,000 cells \(rows × columns\)"):
        read_table(write(tmp_path / "cells.csv", data))
    assert len(read_table(write(tmp_path / "fits.csv", data[: 20 + 21 * 90])).rows) == 90


# --- workbooks that lie about their size ------------------------------------------------------


def sheet_xlsx(path, rows_xml: str, dimension: str | None = "A1:XFD1048576"):
    """A minimal .xlsx written part by part, so its sheet can declare any dimension."""
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    package = "http://schemas.openxmlformats.org/package/2006/relationships"
    office = "application/vnd.openxmlformats-officedocument.spreadsheetml"
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{office}.sheet.main+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{office}.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{package}"><Relationship Id="rId1" '
            f'Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{package}"><Relationship Id="rId1" '
            f'Type="{rel}/worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{main}">'
            + (f'<dimension ref="{dimension}"/>' if dimension else "")
            + f"<sheetData>{rows_xml}</sheetData></worksheet>"
        ),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, xml in parts.items():
            archive.writestr(name, xml)
    return path


def cell(ref: str, value: str | int) -> str:
    if isinstance(value, int):
        return f'<c r="{ref}"><v>{value}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t>{value}</t></is></c>'


SMALL_SHEET = (
    f'<row r="1">{cell("A1", "id")}{cell("B1", "text")}</row>'
    f'<row r="2">{cell("A2", 1)}{cell("B2", "great")}</row>'
    f'<row r="3">{cell("A3", 2)}{cell("B3", "awful")}</row>'
)

# Reads a workbook in a child process whose address space is capped at 1 GiB (so a reader
# that builds the declared 17 billion cells fails there, not on this machine), and reports
# what it read, the peak of Python's allocations and the process's peak resident memory
# (VmHWM: ru_maxrss would include the parent's size, inherited through fork and exec).
CHILD = """
import json, resource, sys, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (1024**3, 1024**3))
from desktop.files.reader import read_table
from desktop.errors import UserError
tracemalloc.start()
try:
    table = read_table(sys.argv[1])
    out = {"columns": table.columns, "rows": table.rows}
except UserError as exc:
    out = {"error": str(exc)}
except MemoryError:
    out = {"error": "MemoryError"}
out["python_mb"] = tracemalloc.get_traced_memory()[1] / 1024**2
tracemalloc.stop()
try:
    status = open("/proc/self/status").read()
    out["peak_mb"] = int(status.split("VmHWM:")[1].split()[0]) / 1024
except (OSError, IndexError):
    out["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
"""


def read_in_child(path) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0 and done.stdout.strip(), done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_workbook_declaring_a1_to_xfd1048576_is_read_as_the_cells_it_holds(tmp_path):
    # Three rows of data, a declared size of 16,384 × 1,048,576 and an empty styled last row.
    path = sheet_xlsx(tmp_path / "bomb.xlsx", SMALL_SHEET + '<row r="1048576" s="1" customFormat="1"/>')
    assert path.stat().st_size < 2_000  # the 1.5 KB file of the report
    result = read_in_child(path)
    assert result.get("error") is None, result
    assert result["columns"] == ["id", "text"]
    assert result["rows"] == [[1, "great"], [2, "awful"]]
    assert result["peak_mb"] < 300 and result["python_mb"] < 100, result


@pytest.mark.parametrize(
    "far_cell, message",
    [
        ("XFD1048576", "has more than 1,000 columns"),  # and more than 1,000,000 rows
        ("A1048576", "has more than 1,000,000 rows"),
        ("XFD4", "has more than 1,000 columns"),
    ],
)
def test_a_workbook_with_a_far_away_cell_is_refused_in_bounded_memory(tmp_path, far_cell, message):
    row = far_cell.lstrip("AXFD")
    path = sheet_xlsx(tmp_path / "far.xlsx", SMALL_SHEET + f'<row r="{row}">{cell(far_cell, "boom")}</row>')
    result = read_in_child(path)
    assert message in result.get("error", ""), result
    assert result["error"].startswith("far.xlsx ") and "\n" not in result["error"]
    assert result["peak_mb"] < 300 and result["python_mb"] < 100, result


def test_a_9_kb_workbook_with_a_row_of_two_million_empty_cells_is_refused_in_bounded_memory(tmp_path):
    path = sheet_xlsx(tmp_path / "row.xlsx", SMALL_SHEET + '<row r="4">' + "<c/>" * 2_000_000 + "</row>")
    assert path.stat().st_size < 10_000
    result = read_in_child(path)
    assert "row.xlsx has a row of more than 16,384 cells, more than Excel allows" in result.get(
        "error", ""
    ), result
    assert result["peak_mb"] < 300 and result["python_mb"] < 100, result


def test_a_workbook_holding_more_cells_than_the_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(batchfiles, "MAX_CELLS", 100)
    rows = "".join(f'<row r="{r}"><c r="A{r}"/><c r="B{r}"/></row>' for r in range(4, 60))
    with pytest.raises(UserError, match=r"^cells.xlsx has more than 100 cells \(rows × columns\)"):
        read_table(sheet_xlsx(tmp_path / "cells.xlsx", SMALL_SHEET + rows))


def test_a_workbook_without_a_dimension_and_with_gaps_keeps_its_blank_rows(tmp_path):
    rows = SMALL_SHEET + f'<row r="6">{cell("A6", 5)}{cell("C6", "wider")}</row><row r="9"><c r="B9"/></row>'
    table = read_table(sheet_xlsx(tmp_path / "gaps.xlsx", rows, dimension=None))
    assert table.columns == ["id", "text", "column 3"]
    assert table.rows == [[1, "great", None], [2, "awful", None], [None] * 3, [None] * 3, [5, None, "wider"]]


def test_a_workbook_that_unpacks_to_more_than_the_limit_is_refused(tmp_path, monkeypatch):
    import desktop.files.xlsx as batchxlsx

    monkeypatch.setattr(batchxlsx, "MAX_UNPACKED_BYTES", 1_000)
    with pytest.raises(UserError, match="unpacks to 0.0 GB; Pipedesk reads workbooks of up to 0 GB"):
        read_table(sheet_xlsx(tmp_path / "big.xlsx", SMALL_SHEET * 5))
    monkeypatch.setattr(batchxlsx, "MAX_UNPACKED_BYTES", 10**6)
    monkeypatch.setattr(batchxlsx, "MAX_OTHER_PART_BYTES", 400)  # parts other than sheets are parsed whole
    with pytest.raises(
        UserError, match=r"has a part \(\[Content_Types\]\.xml\) far larger than a workbook needs"
    ):
        read_table(sheet_xlsx(tmp_path / "big.xlsx", SMALL_SHEET))


# --- writing results ------------------------------------------------------------------------


def test_xlsx_export_keeps_numbers_as_numbers_and_codes_as_text(tmp_path):
    from openpyxl import load_workbook

    source = write(
        tmp_path / "in.csv",
        b"id,price,qty,zip,code,card,sci,neg,text\n"
        b"1,3.5,0,02134,007,4111111111111111,1e5,-0,great\n"
        b"12,-0.25,,90210,0,123456789012345,NaN,-7,awful\n",
    )
    results = {
        0: {"label": "POSITIVE", "score": 0.98, "note": ""},
        1: {"label": "12", "score": 0.5, "note": ""},
    }
    out = write_results(read_table(source), results, ["label", "score"], tmp_path / "out.xlsx", prefix="s")
    sheet = load_workbook(out).active
    header = [c.value for c in sheet[1]]
    assert header == [
        "id",
        "price",
        "qty",
        "zip",
        "code",
        "card",
        "sci",
        "neg",
        "text",
        "label",
        "score",
        "note",
    ]
    columns = {
        name: [(c.data_type, c.value) for c in column[1:]]
        for name, column in zip(header, sheet.columns, strict=True)
    }
    # Columns of plain numbers are numeric cells...
    assert columns["id"] == [("n", 1), ("n", 12)] and columns["price"] == [("n", 3.5), ("n", -0.25)]
    assert columns["qty"][0] == ("n", 0) and columns["qty"][1][1] in ("", None)
    assert columns["score"][0][0] == "n" and columns["score"][0][1] == pytest.approx(0.98)
    # ...and a column with one code, exponent, sign or over-long number stays text, as written.
    assert columns["zip"] == [("s", "02134"), ("s", "90210")] and columns["code"] == [
        ("s", "007"),
        ("s", "0"),
    ]
    assert columns["card"] == [("s", "4111111111111111"), ("s", "123456789012345")]
    assert columns["sci"] == [("s", "1e5"), ("s", "NaN")] and columns["neg"] == [("s", "-0"), ("s", "-7")]
    assert columns["label"] == [("s", "POSITIVE"), ("s", "12")]  # results keep their own types


def test_xlsx_and_jsonl_inputs_keep_their_own_types_in_xlsx(tmp_path):
    from openpyxl import Workbook, load_workbook

    book = Workbook()
    book.active.append(["zip", "n", "text"])
    book.active.append(["12", 3, "hello"])
    book.save(tmp_path / "in.xlsx")
    jsonl = write(tmp_path / "in.jsonl", b'{"zip": "12", "n": 3, "text": "hello"}\n')
    for source in (tmp_path / "in.xlsx", jsonl):
        out = write_results(read_table(source), {}, ["label"], tmp_path / f"out-{source.suffix[1:]}.xlsx")
        zip_cell, n_cell = load_workbook(out).active[2][:2]
        assert (zip_cell.data_type, zip_cell.value) == ("s", "12"), source.name
        assert (n_cell.data_type, n_cell.value) == ("n", 3), source.name


def test_csv_and_tsv_exports_start_with_a_utf8_bom_and_read_back(tmp_path):
    table = read_table(write(tmp_path / "in.csv", "id,text\n1,Crème brûlée\n".encode()))
    for suffix in (".csv", ".tsv"):
        out = write_results(
            table, {0: {"label": "POSITIVE", "note": ""}}, ["label"], tmp_path / f"out{suffix}"
        )
        data = out.read_bytes()
        assert data.startswith(codecs.BOM_UTF8), data[:8]
        assert "Crème brûlée" in data.decode("utf-8-sig")
        again = read_table(out)
        assert again.columns == ["id", "text", "label", "note"] and again.texts("text") == ["Crème brûlée"]
    jsonl = write_results(table, {}, ["label"], tmp_path / "out.jsonl").read_bytes()
    assert jsonl.startswith(b'{"id": "1"')  # JSONL as before: no BOM, values as read


# --- Parquet, and whose file it is -------------------------------------------------------------


def test_parquet_is_read_with_its_types_and_its_declared_size_checked_first(tmp_path, monkeypatch):
    import pandas as pd

    from desktop.files import VISITOR

    path = tmp_path / "orders.parquet"
    pd.DataFrame(
        {"id": range(5), "text": ["fine"] * 5, "when": pd.date_range("2026-01-01", periods=5)}
    ).to_parquet(path)
    table = read_table(path)
    assert table.format == "parquet" and table.columns == ["id", "text", "when"]
    assert table.rows[0][0] == 0 and table.rows[0][2].startswith("2026-01-01")
    monkeypatch.setattr(batchfiles, "MAX_ROWS", 3)  # the footer says 5 rows: refused before reading
    with pytest.raises(UserError, match="has more than 3 rows"):
        read_table(path)
    monkeypatch.undo()
    with pytest.raises(UserError, match="files shared here can be CSV, TSV, XLSX, JSONL or TXT"):
        read_table(path, limits=VISITOR)
    (tmp_path / "fake.parquet").write_text("id,text\n1,hello\n")
    with pytest.raises(UserError, match="fake.parquet is not a valid Parquet file"):
        read_table(tmp_path / "fake.parquet")


def test_a_visitors_file_stops_at_the_visitors_row_limit_as_it_is_read(tmp_path):
    from desktop.files import VISITOR

    path = write(tmp_path / "long.csv", b"text\n" + b"hello there\n" * 6_000)
    assert len(read_table(path).rows) == 6_000
    with pytest.raises(
        UserError, match="has more than 5,000 rows; Pipedesk reads up to 5,000 at a time from a visitor"
    ):
        read_table(path, limits=VISITOR)
