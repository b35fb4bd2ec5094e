"""Reading the files a batch run analyses: CSV, TSV, XLSX, JSONL and plain text.

Pure file handling, no model: a file becomes a :class:`Table` (column names,
rows in file order, warnings a person should read, and per-row notes such as
"read as cp1252"). A file that is not text is refused, and text is decoded line
by line (``desktop.batchtext``): UTF-8 with or without a BOM, UTF-16 with its BOM,
Windows-1252 for lines that are not valid UTF-8 (the warning names the rows).
Workbooks are read by ``desktop.batchxlsx``. Rows are read one at a time and the
limits (:data:`MAX_ROWS`, :data:`MAX_COLUMNS`, :data:`MAX_CELLS`) are checked as
they come, so a file past them is refused before it is built. Writing results
lives in ``desktop.batchexport``.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from desktop.batchtext import TextFile, open_text
from desktop.errors import UserError

R = TypeVar("R")

#: Files larger than this are refused (``PIPEDESK_BATCH_MAX_MB`` overrides).
MAX_FILE_MB = 100
#: Rows a file may hold (blank rows at its end do not count).
MAX_ROWS = 1_000_000
#: Columns a file may have: wider files are refused, whatever a workbook declares.
MAX_COLUMNS = 1_000
#: Rows × columns: what a table holds in memory once every row is padded to its width.
MAX_CELLS = 20_000_000
#: Separators one CSV record may hold (quoted or not) before csv is asked to split it.
SEPARATORS_PER_RECORD = 100 * MAX_COLUMNS
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
    """Read ``path`` into a Table, or raise UserError with a sentence saying what is wrong.

    Runs on the caller's thread (the CLI's main thread, a Gradio worker for the Batch tab).
    """
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
        from desktop.batchxlsx import read_xlsx  # imports openpyxl: only when a workbook comes

        table = read_xlsx(path, name)
    else:
        source = open_text(path.read_bytes(), name)
        reader = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl, "txt": _read_txt}
        table = reader[fmt](source, name, fmt)
    if not table.rows:
        raise UserError(f"{name} has a header but no rows to analyse.")
    return table


# --- limits -------------------------------------------------------------------------------


def check_size(name: str, rows: int, columns: int, cells: int | None = None) -> None:
    """UserError as soon as a table being read has too many rows, columns or cells
    (``cells``: rows × columns unless counted otherwise, e.g. the cells a workbook holds).

    Every reader calls this as it adds a row or widens the table, so one rule holds for
    every format and nothing past a limit is ever built.
    """
    if columns > MAX_COLUMNS:
        raise UserError(
            f"{name} has more than {MAX_COLUMNS:,} columns; Pipedesk reads up to {MAX_COLUMNS:,}. "
            "Keep the columns you need (the texts and an id) and try again."
        )
    if rows > MAX_ROWS:
        raise UserError(
            f"{name} has more than {MAX_ROWS:,} rows; Pipedesk reads up to {MAX_ROWS:,} at a time. "
            "Split it into smaller files."
        )
    if (rows * columns if cells is None else cells) > MAX_CELLS:
        raise UserError(
            f"{name} has more than {MAX_CELLS:,} cells (rows × columns); Pipedesk reads up to "
            f"{MAX_CELLS:,} at a time. Remove the columns you do not need, or split it."
        )


def without_blank_tail(records: Iterable[R], blank: Callable[[R], bool], name: str) -> Iterator[R]:
    """``records`` without the blank ones at the end, lazily, refusing more than MAX_ROWS.

    A run of blank records is held back until a record with content follows (then they
    are rows, counted with it) or the records end (then they are dropped). Only blanks
    that could still become rows are stored, and no more than ``2 * MAX_ROWS`` records
    are looked at, blank or not: a sheet whose next row is numbered 4,000,000,000 cannot
    keep the reader busy.
    """
    held: list[R] = []
    waiting = kept = 0
    for record in records:
        if blank(record):
            waiting += 1
            if kept + waiting <= MAX_ROWS:
                held.append(record)
            elif kept + waiting > 2 * MAX_ROWS:
                check_size(name, kept + waiting, 1)
            continue
        check_size(name, kept + waiting + 1, 1)
        yield from held
        yield record
        kept += waiting + 1
        held.clear()
        waiting = 0


def _warn_fallback(table: Table, rows: set[int]) -> None:
    """Name the rows (-1: the header) that had lines read as cp1252."""
    named = sorted(row for row in rows if 0 <= row < len(table.rows))
    header = -1 in rows
    if not named and not header:
        return
    for row in named:
        table.add_note(row, "read as Windows-1252 (not valid UTF-8)")
    where = []
    if named:
        where.append(f"{'row' if len(named) == 1 else 'rows'} {_list_rows(named)}")
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


# --- text formats -------------------------------------------------------------------------


class _Feed:
    """The lines csv.reader asks for, one record at a time (csv never reads ahead).

    Notes the records holding a line read as cp1252, remembers where the current record
    started (for an unclosed quote), and refuses a record with absurdly many separators
    before csv splits it: a 100 MB line of commas would be 100 million strings.
    """

    def __init__(self, source: TextFile, delimiter: str, name: str) -> None:
        self.lines, self.delimiter, self.name = source.lines(), delimiter, name
        self.record = self.separators = self.line = self.record_line = 0
        self.fallback: set[int] = set()

    def __iter__(self) -> _Feed:
        return self

    def __next__(self) -> str:
        line, fell_back = next(self.lines)
        self.line += 1
        if fell_back:
            self.fallback.add(self.record - 1)  # record 0 is the header: row -1
        self.separators += line.count(self.delimiter)
        if self.separators > SEPARATORS_PER_RECORD:
            check_size(self.name, self.record, MAX_COLUMNS + 1)
        return line

    def next_record(self) -> None:
        self.record += 1
        self.separators = 0
        self.record_line = self.line


def _read_delimited(source: TextFile, name: str, fmt: str) -> Table:
    """CSV (delimiter sniffed among , ; tab |) or TSV; the first row is the header."""
    delimiter = "\t" if fmt == "tsv" else _sniff_delimiter(source.sample())
    csv.field_size_limit(max(csv.field_size_limit(), max_file_bytes()))
    for strict in (True, False):
        feed = _Feed(source, delimiter, name)
        try:
            table = _delimited_table(csv.reader(feed, delimiter=delimiter, strict=strict), feed, name, fmt)
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                raise UserError(
                    f"{name}: the quote opened on line {feed.record_line + 1} is never closed, so the "
                    "rest of the file would be read as one text. Fix that quote (or save the file "
                    "again from your spreadsheet) and try again."
                ) from None
            continue  # other strictness complaints (text after a closing quote...): read leniently
        _warn_fallback(table, feed.fallback)
        return table
    raise AssertionError("unreachable")  # pragma: no cover


def _delimited_table(reader: Iterator[list[str]], feed: _Feed, name: str, fmt: str) -> Table:
    def records() -> Iterator[list[str] | int]:
        """Each record; a blank one as its number of fields, all that is kept of it."""
        for record in reader:
            feed.next_record()
            yield record if any(cell.strip() for cell in record) else len(record)

    rows = records()
    header = next(rows, None)
    if header is None:
        raise UserError(f"{name} is empty: there are no rows to analyse.")
    columns = unique_names([""] * header if isinstance(header, int) else header)
    width = len(columns)
    check_size(name, 0, width)
    table = Table(name=name, format=fmt, columns=columns, rows=[])
    misfits = []
    for number, record in enumerate(without_blank_tail(rows, lambda r: isinstance(r, int), name)):
        fields = record if isinstance(record, int) else len(record)
        if fields and fields != width:
            misfits.append(number)
            table.add_note(number, f"malformed row: {fields} fields, the header has {width}")
        table.rows.append([""] * width if isinstance(record, int) else (record + [""] * width)[:width])
        check_size(name, number + 1, width)
    if misfits:
        table.warnings.append(
            f"{'Row' if len(misfits) == 1 else 'Rows'} {_list_rows(misfits)} of {name} "
            f"{'does' if len(misfits) == 1 else 'do'} not have {width} fields like the header: "
            "missing fields were left empty and extra ones dropped."
        )
    return table


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t|").delimiter
    except csv.Error:
        return ","


def _read_txt(source: TextFile, name: str, fmt: str) -> Table:
    """One text per line; blank lines are rows with nothing to analyse (except at the end)."""
    table = Table(name=name, format=fmt, columns=["text"], rows=[])
    fallback: set[int] = set()
    lines = ((line.rstrip("\r\n"), fell_back) for line, fell_back in source.lines())
    for number, (line, fell_back) in enumerate(without_blank_tail(lines, lambda r: not r[0].strip(), name)):
        table.rows.append([line])
        if fell_back:
            fallback.add(number)
    _warn_fallback(table, fallback)
    return table


def _read_jsonl(source: TextFile, name: str, fmt: str) -> Table:
    """One JSON object per line (a bare string counts as {"text": ...}); blank lines are skipped.

    Columns are every key seen, in the order first seen; a row is filled in as it is read
    and padded at the end for the keys that came later.
    """
    columns: dict[str, int] = {}
    table = Table(name=name, format=fmt, columns=[], rows=[])
    broken: list[int] = []
    fallback: set[int] = set()
    for line, fell_back in source.lines():
        if not line.strip():
            continue
        number = len(table.rows)
        if fell_back:
            fallback.add(number)
        try:
            value = json.loads(line)
        except ValueError:
            value = None
        if isinstance(value, str):
            value = {"text": value}
        if isinstance(value, dict):
            for key in value:
                columns.setdefault(str(key), len(columns))
        check_size(name, number + 1, max(1, len(columns)))
        if isinstance(value, dict):
            row = [None] * len(columns)
            for key, item in value.items():
                row[columns[str(key)]] = item
            table.rows.append(row)
        else:
            broken.append(number)
            table.add_note(number, "malformed row: not a JSON object")
            table.rows.append([])
    if broken and len(broken) == len(table.rows):
        raise UserError(f"{name} is not JSON Lines: no line holds a JSON object.")
    table.columns = list(columns) or ["text"]
    width = len(table.columns)
    for row in table.rows:
        row.extend([None] * (width - len(row)))
    if broken:
        table.warnings.append(
            f"{'Row' if len(broken) == 1 else 'Rows'} {_list_rows(broken)} of {name} "
            f"{'is' if len(broken) == 1 else 'are'} not a JSON object: left empty in the results."
        )
    _warn_fallback(table, fallback)
    return table


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
