"""Reading the files a batch run analyses: CSV, TSV, XLSX, JSONL and plain text.

Pure file handling, no model: a file becomes a :class:`Table` (column names,
rows in file order, warnings a person should read, and per-row notes such as
"read as cp1252"). Text files are read as UTF-8 (with or without a BOM), or
UTF-16 when they start with its BOM; lines that are not valid UTF-8 fall back
to Windows-1252 (latin-1 for the few bytes cp1252 leaves undefined) and the
warning names the rows affected. Writing results lives in ``desktop.batchexport``.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop.errors import UserError

#: Files larger than this are refused (``PIPEDESK_BATCH_MAX_MB`` overrides).
MAX_FILE_MB = 100
MAX_ROWS = 1_000_000
#: A cell longer than this is cut before any model sees it (and marked in the results).
MAX_CELL_CHARS = 100_000
FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
}
#: Column names that usually hold the text to analyse, best first.
TEXT_NAMES = ("text", "review", "comment", "comments", "content", "body", "message", "sentence", "answer")
PREVIEW_ROWS = 10


@dataclass
class Table:
    """A file's rows, in file order, with what went wrong while reading it."""

    name: str
    format: str
    columns: list[str]
    rows: list[list[Any]]
    warnings: list[str] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)  # row index -> note for the results

    def column_index(self, column: str) -> int:
        """The position of ``column``; UserError listing the columns when there is none."""
        if column in self.columns:
            return self.columns.index(column)
        lowered = [c.lower() for c in self.columns]
        if column.strip().lower() in lowered:
            return lowered.index(column.strip().lower())
        raise UserError(f"{self.name} has no column {column!r}. Its columns are: {', '.join(self.columns)}.")

    def texts(self, column: str) -> list[str]:
        """The text of every row in ``column`` ('' where empty), cut to ``MAX_CELL_CHARS``."""
        index = self.column_index(column)
        out = []
        for row_number, row in enumerate(self.rows):
            value = row[index] if index < len(row) else None
            text = "" if value is None else str(value)
            if len(text) > MAX_CELL_CHARS:
                text = text[:MAX_CELL_CHARS]
                self.add_note(row_number, f"text cut to its first {MAX_CELL_CHARS:,} characters")
            out.append(text)
        return out

    def add_note(self, row: int, note: str) -> None:
        existing = self.notes.get(row)
        if existing and note in existing:
            return
        self.notes[row] = f"{existing}; {note}" if existing else note

    def guess_column(self) -> str:
        """The column most likely to hold the texts: a usual name, else the longest on average."""
        lowered = [c.strip().lower() for c in self.columns]
        for name in TEXT_NAMES:
            if name in lowered:
                return self.columns[lowered.index(name)]
        sample = self.rows[:200]

        def average_length(i: int) -> float:
            values = [row[i] for row in sample if i < len(row)]
            texts = [v for v in values if isinstance(v, str)]
            return sum(len(t) for t in texts) / max(1, len(values))

        return self.columns[max(range(len(self.columns)), key=average_length)]

    def preview(self, rows: int = PREVIEW_ROWS) -> list[list[str]]:
        """The first ``rows`` rows as short strings, for a table a person glances at."""
        return [[_short(value) for value in row] for row in self.rows[:rows]]


def max_file_bytes() -> int:
    value = os.environ.get("PIPEDESK_BATCH_MAX_MB", "").strip()
    return int(float(value) * 1024 * 1024) if value else MAX_FILE_MB * 1024 * 1024


def file_format(path: Path) -> str:
    """'csv', 'tsv', 'xlsx', 'jsonl' or 'txt' from the file name; UserError otherwise."""
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise UserError(f"{path.name} is an old-style .xls workbook: save it as .xlsx or CSV first.")
    if suffix not in FORMATS:
        raise UserError(
            f"{path.name}: Pipedesk reads CSV, TSV, XLSX, JSONL and TXT files (one text per line), "
            f"not {suffix or 'files without an extension'}."
        )
    return FORMATS[suffix]


def read_table(path: str | Path, name: str | None = None) -> Table:
    """Read ``path`` into a Table, or raise UserError with a sentence saying what is wrong."""
    path = Path(path)
    name = name or path.name
    fmt = file_format(Path(name))
    try:
        size = path.stat().st_size
    except OSError:
        raise UserError(f"{name} could not be found.") from None
    limit = max_file_bytes()
    if size > limit:
        raise UserError(
            f"{name} is {size / 1024**2:,.0f} MB; Pipedesk reads files of up to "
            f"{limit / 1024**2:,.0f} MB at a time. Split it into smaller files."
        )
    if fmt == "xlsx":
        table = _read_xlsx(path, name)
    else:
        data = path.read_bytes()
        if not data.strip():
            raise UserError(f"{name} is empty: there are no rows to analyse.")
        text, fallback_lines = decode(data)
        reader = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl, "txt": _read_txt}
        table, line_rows = reader[fmt](text, name, fmt)
        _warn_fallback(table, fallback_lines, line_rows)
    if not table.rows:
        raise UserError(f"{name} has a header but no rows to analyse.")
    if len(table.rows) > MAX_ROWS:
        raise UserError(f"{name} has {len(table.rows):,} rows; the limit is {MAX_ROWS:,}. Split it first.")
    return table


# --- decoding ---------------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, list[int]]:
    """Bytes to text, and the (0-based) line numbers that had to be read as cp1252."""
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return data.decode("utf-16"), []
        except UnicodeDecodeError:
            raise UserError("The file starts like UTF-16 text but is not valid UTF-16.") from None
    try:
        return data.decode("utf-8"), []
    except UnicodeDecodeError:
        pass
    parts: list[str] = []
    fallback: list[int] = []
    for number, line in enumerate(data.splitlines(keepends=True)):
        try:
            parts.append(line.decode("utf-8"))
        except UnicodeDecodeError:
            fallback.append(number)
            try:
                parts.append(line.decode("cp1252"))
            except UnicodeDecodeError:
                parts.append(line.decode("latin-1"))
    return "".join(parts), fallback


def physical_lines(text: str) -> list[str]:
    """Lines ending at \\n, \\r or \\r\\n only (as ``bytes.splitlines`` cuts them), ends kept."""
    return list(io.StringIO(text, newline=""))


def _warn_fallback(table: Table, lines: list[int], line_rows: list[int]) -> None:
    """Name the rows whose lines were read as cp1252 (``line_rows[line]`` = row, or -1)."""
    if not lines:
        return
    rows = sorted({line_rows[line] for line in lines if line < len(line_rows)})
    header = -1 in rows
    rows = [r for r in rows if r >= 0]
    for row in rows:
        table.add_note(row, "read as Windows-1252 (not valid UTF-8)")
    where = []
    if rows:
        where.append(f"{'row' if len(rows) == 1 else 'rows'} {_list_rows(rows)}")
    if header:
        where.insert(0, "the header")
    table.warnings.append(
        f"{table.name} is not all valid UTF-8: {' and '.join(where)} were read as Windows-1252 "
        "(cp1252). Check their accented letters, or save the file as UTF-8."
    )


def _list_rows(rows: list[int], shown: int = 10) -> str:
    """'2, 5 and 9' (1-based), with 'and N more' past ``shown``."""
    numbers = [f"{r + 1:,}" for r in rows[:shown]]
    if len(rows) > shown:
        return f"{', '.join(numbers)} and {len(rows) - shown:,} more"
    return numbers[0] if len(numbers) == 1 else f"{', '.join(numbers[:-1])} and {numbers[-1]}"


# --- formats ----------------------------------------------------------------------------


def _read_delimited(text: str, name: str, fmt: str) -> tuple[Table, list[int]]:
    """CSV (delimiter sniffed among , ; tab |) or TSV; the first row is the header."""
    delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(text)
    csv.field_size_limit(max(csv.field_size_limit(), max_file_bytes()))
    records, spans = _parse(text, delimiter, name)
    while records and not any(cell.strip() for cell in records[-1]):
        records.pop()  # blank lines at the end of the file are not rows
        spans.pop()
    if not records:
        raise UserError(f"{name} is empty: there are no rows to analyse.")
    columns = unique_names(records[0])
    table = Table(name=name, format=fmt, columns=columns, rows=[])
    width = len(columns)
    misfits = []
    for number, record in enumerate(records[1:]):
        if record and len(record) != width:
            misfits.append(number)
            table.add_note(number, f"malformed row: {len(record)} fields, the header has {width}")
        table.rows.append((record + [""] * width)[:width])
    if misfits:
        table.warnings.append(
            f"{'Row' if len(misfits) == 1 else 'Rows'} {_list_rows(misfits)} of {name} "
            f"{'does' if len(misfits) == 1 else 'do'} not have {width} fields like the header: "
            "missing fields were left empty and extra ones dropped."
        )
    line_rows: list[int] = []
    for record_number, (first, last) in enumerate(spans):
        line_rows.extend([record_number - 1] * (last - first + 1))
    return table, line_rows


def _parse(text: str, delimiter: str, name: str) -> tuple[list[list[str]], list[tuple[int, int]]]:
    """Records and the (first, last) 0-based line each spans; an unclosed quote is an error."""
    lines = physical_lines(text)
    for strict in (True, False):
        reader = csv.reader(lines, delimiter=delimiter, strict=strict)
        records: list[list[str]] = []
        spans: list[tuple[int, int]] = []
        previous = 0
        try:
            for record in reader:
                records.append(record)
                spans.append((previous, reader.line_num - 1))
                previous = reader.line_num
            return records, spans
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise UserError(
                    f"{name}: the quote opened on line {previous + 1} is never closed, so the rest of "
                    "the file would be read as one text. Fix that quote (or save the file again from "
                    "your spreadsheet) and try again."
                ) from None
            if "NUL" in str(exc):
                raise UserError(f"{name} contains NUL bytes: it does not look like a text file.") from None
            # Other strictness complaints (text after a closing quote...): read leniently.
    raise AssertionError("unreachable")  # pragma: no cover


def _sniff_delimiter(text: str) -> str:
    sample = text[:65536]
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_txt(text: str, name: str, fmt: str) -> tuple[Table, list[int]]:
    """One text per line; blank lines are rows with nothing to analyse (except at the end)."""
    lines = [line.rstrip("\r\n") for line in physical_lines(text)]
    while lines and not lines[-1].strip():
        lines.pop()
    table = Table(name=name, format=fmt, columns=["text"], rows=[[line] for line in lines])
    return table, list(range(len(lines)))


def _read_jsonl(text: str, name: str, fmt: str) -> tuple[Table, list[int]]:
    """One JSON object per line (a bare string counts as {"text": ...}); blank lines are skipped."""
    objects: list[dict[str, Any] | None] = []
    line_rows: list[int] = []
    broken: list[int] = []
    columns: dict[str, None] = {}
    for line in physical_lines(text):
        if not line.strip():
            line_rows.append(-2)
            continue
        line_rows.append(len(objects))
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, str):
            value = {"text": value}
        if not isinstance(value, dict):
            broken.append(len(objects))
            objects.append(None)
            continue
        for key in value:
            columns.setdefault(str(key), None)
        objects.append({str(k): v for k, v in value.items()})
    names = list(columns) or ["text"]
    table = Table(name=name, format=fmt, columns=names, rows=[])
    for number, obj in enumerate(objects):
        if obj is None:
            table.add_note(number, "malformed row: not a JSON object")
            table.rows.append([None] * len(names))
        else:
            table.rows.append([obj.get(column) for column in names])
    if broken and len(broken) == len(objects):
        raise UserError(f"{name} is not JSON Lines: no line holds a JSON object.")
    if broken:
        table.warnings.append(
            f"{'Row' if len(broken) == 1 else 'Rows'} {_list_rows(broken)} of {name} "
            f"{'is' if len(broken) == 1 else 'are'} not a JSON object: left empty in the results."
        )
    return table, line_rows


def _read_xlsx(path: Path, name: str) -> Table:
    """The first worksheet with data; its first row is the header."""
    import zipfile

    from openpyxl import load_workbook

    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError):
        raise UserError(f"{name} is not a valid Excel workbook (.xlsx): it could not be opened.") from None
    try:
        for sheet in workbook.worksheets:
            rows = [list(row) for row in sheet.iter_rows(values_only=True)]
            while rows and all(_blank(v) for v in rows[-1]):
                rows.pop()
            if rows:
                break
        else:
            raise UserError(f"{name} is empty: there are no rows to analyse.")
    finally:
        workbook.close()
    header = rows[0]
    while (
        header
        and _blank(header[-1])
        and all(len(r) < len(header) or _blank(r[len(header) - 1]) for r in rows)
    ):
        header = header[:-1]
    width = len(header)
    columns = unique_names(["" if v is None else str(v) for v in header])
    body = [[_cell(v) for v in (row + [None] * width)[:width]] for row in rows[1:]]
    return Table(name=name, format="xlsx", columns=columns, rows=body)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # dates, times, decimals: as Excel shows them, more or less


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def unique_names(names: list[str]) -> list[str]:
    """Header cells as column names: blanks named 'column N', duplicates numbered."""
    out: list[str] = []
    for number, raw in enumerate(names, start=1):
        base = (raw or "").strip() or f"column {number}"
        candidate, n = base, 2
        while candidate in out:
            candidate, n = f"{base} ({n})", n + 1
        out.append(candidate)
    return out


def _short(value: Any, limit: int = 200) -> str:
    text = (
        ""
        if value is None
        else value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, default=str)
    )
    return text if len(text) <= limit else text[: limit - 1] + "…"
