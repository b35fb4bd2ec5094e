"""Reading the files a batch run analyses: CSV, TSV, XLSX, JSONL and plain text.

Pure file handling, no model: a file becomes a :class:`Table` (column names,
rows in file order, warnings a person should read, and per-row notes such as
"read as cp1252"). A file that is not text is refused, and text is decoded line
by line (``desktop.files.text``): UTF-8 with or without a BOM, UTF-16 with its BOM,
Windows-1252 for lines that are not valid UTF-8 (the warning names the rows).
Workbooks are read by ``desktop.files.xlsx``. Rows are read one at a time and the
limits (:data:`MAX_ROWS`, :data:`MAX_COLUMNS`, :data:`MAX_CELLS`) are checked as
they come, so a file past them is refused before it is built. Writing results
lives in ``desktop.batch.writer``.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from pathlib import Path

from desktop.errors import UserError
from desktop.files import OWNER, Limits
from desktop.files import table as limits
from desktop.files.table import (
    Table,
    check_size,
    list_rows,
    max_file_bytes,
    reader_limits,
    reading_for,
    unique_names,
    without_blank_tail,
)
from desktop.files.text import TextFile, open_text

FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "xlsx",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".txt": "txt",
    ".parquet": "parquet",
}
#: What LAN visitors and public deployments may hand in (Parquet is the owner's only).
VISITOR_FORMATS = ("csv", "tsv", "xlsx", "jsonl", "txt")


def file_format(path: Path) -> str:
    """'csv', 'tsv', 'xlsx', 'jsonl', 'txt' or 'parquet' from the file name; UserError otherwise."""
    suffix = path.suffix.lower()
    if suffix == ".xls":
        raise UserError(f"{path.name} is an old-style .xls workbook: save it as .xlsx or CSV first.")
    if suffix not in FORMATS:
        raise UserError(
            f"{path.name}: Pipedesk reads CSV, TSV, XLSX, JSONL, Parquet and TXT files (one text per line), "
            f"not {suffix or 'files without an extension'}."
        )
    return FORMATS[suffix]


def read_folder(folder: str | Path, extensions: set[str], what: str) -> Table:
    """The files in ``folder`` (and its subfolders) whose names end with one of ``extensions``, as a
    table of absolute paths in name order (a folder of recordings for ``pipedesk batch transcribe``)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise UserError(f"{folder} is not a folder.")
    files = sorted(
        (p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in extensions),
        key=lambda p: p.relative_to(folder).as_posix().lower(),
    )
    if not files:
        kinds = ", ".join(sorted(e.lstrip(".").upper() for e in extensions))
        raise UserError(f"{folder} holds no {what} ({kinds}).")
    check_size(folder.name, len(files), 1)
    return Table(
        name=folder.name, format="folder", columns=["file"], rows=[[str(p.resolve())] for p in files]
    )


#: The kinds of file a folder run reads, and what a person calls a folder of them.
FOLDER_FILES = {"audio": "recordings", "image": "photos"}


def read_rows(
    path: str | Path,
    file_input: str | None = "text",
    folder: str | None = None,
    sheet: str | None = None,
    limits: Limits = OWNER,
) -> Table:
    """The rows of a file run of a task whose rows fill ``file_input`` (its spec's) and whose
    folder runs read files of kind ``folder`` ("audio", "image"; its spec's ``folder_kind``).

    A folder: its files of that kind (subfolders too, in name order), one per row. A table file
    (read by :func:`read_table`): texts, or for a task whose rows are files (``file_input`` audio
    or image) one file name per row, relative to the list's own folder. Both engines call this."""
    path = Path(path).expanduser()
    kind = folder or (file_input if file_input in FOLDER_FILES else None)
    if kind is not None and path.is_dir():
        table = read_folder(path, _extensions(kind), FOLDER_FILES[kind])
        table.holds = kind
        return table
    table = read_table(path, limits=limits, sheet=sheet)
    if file_input in FOLDER_FILES:
        table.base = path.resolve().parent
        table.holds = file_input
    return table


def files_table(paths: list[str], kind: str, names: list[str] | None = None) -> Table:
    """Files handed in one by one (photos dropped on the Batch tab) as a table: one row per file,
    its name shown, the file itself read by the run. UserError for a file of another kind."""
    extensions = _extensions(kind)
    shown = names or [Path(p).name for p in paths]
    odd = [name for name in shown if Path(name).suffix.lower() not in extensions]
    if odd:
        kinds = ", ".join(sorted(e.lstrip(".").upper() for e in extensions))
        raise UserError(
            f"{', '.join(odd[:3])}: not {FOLDER_FILES[kind]} ({kinds}); hand in files of one kind at a time."
        )
    check_size(f"{len(paths)} {FOLDER_FILES[kind]}", len(paths), 1)
    return Table(
        name=f"{len(paths)} {FOLDER_FILES[kind]}" if len(paths) != 1 else shown[0],
        format="files",
        columns=["file"],
        rows=[[name] for name in shown],
        holds=kind,
        files=list(paths),
    )


def kind_of_files(paths: list[str]) -> str | None:
    """ "image" or "audio" when every one of ``paths`` is a file of that kind by its name, else None."""
    for kind in FOLDER_FILES:
        extensions = _extensions(kind)
        if paths and all(Path(p).suffix.lower() in extensions for p in paths):
            return kind
    return None


def _extensions(kind: str) -> set[str]:
    if kind == "audio":
        from desktop.files.audio import AUDIO_EXTENSIONS

        return AUDIO_EXTENSIONS
    from desktop.files.images import IMAGE_EXTENSIONS

    return IMAGE_EXTENSIONS


def read_table(
    path: str | Path, name: str | None = None, limits: Limits = OWNER, sheet: str | None = None
) -> Table:
    """Read ``path`` into a Table within ``limits`` (a visitor's file has fewer rows), or raise
    UserError with a sentence saying what is wrong. ``sheet``: the sheet of a workbook to read
    (default: the first with text).

    Runs on the caller's thread (the CLI's main thread, a Gradio worker for the Batch tab).
    """
    with reading_for(limits):
        return _read_table(Path(path), name, sheet)


def _read_table(path: Path, name: str | None, sheet: str | None) -> Table:
    if not path.is_file() and path.exists():
        raise UserError(f"{name or path.name} is not a file.")
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
    if fmt not in VISITOR_FORMATS and reader_limits().visitor:
        raise UserError(f"{name}: files shared here can be CSV, TSV, XLSX, JSONL or TXT.")
    if sheet is not None and fmt != "xlsx":
        raise UserError(f"{name} is not a workbook: it has no sheets to choose from.")
    if fmt == "xlsx":
        from desktop.files.xlsx import read_xlsx  # imports openpyxl: only when a workbook comes

        table = read_xlsx(path, name, sheet)
    elif fmt == "parquet":
        from desktop.files.parquet import read_parquet  # imports pyarrow: only when Parquet comes

        table = read_parquet(path, name)
    else:
        source = open_text(path.read_bytes(), name)
        reader = {"csv": _read_delimited, "tsv": _read_delimited, "jsonl": _read_jsonl, "txt": _read_txt}
        table = reader[fmt](source, name, fmt)
    if not table.rows:
        raise UserError(f"{name} has a header but no rows to analyse.")
    return table


# --- limits -------------------------------------------------------------------------------


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
        where.append(f"{'row' if len(named) == 1 else 'rows'} {list_rows(named)}")
    if header:
        where.insert(0, "the header")
    table.warnings.append(
        f"{table.name} is not all valid UTF-8: {' and '.join(where)} were read as Windows-1252 "
        "(cp1252). Check their accented letters, or save the file as UTF-8."
    )


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
        if self.separators > limits.SEPARATORS_PER_RECORD:
            check_size(self.name, self.record, limits.MAX_COLUMNS + 1)
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
            f"{'Row' if len(misfits) == 1 else 'Rows'} {list_rows(misfits)} of {name} "
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
        except (ValueError, RecursionError):  # RecursionError: nested deeper than Python recurses
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
            f"{'Row' if len(broken) == 1 else 'Rows'} {list_rows(broken)} of {name} "
            f"{'is' if len(broken) == 1 else 'are'} not a JSON object: left empty in the results."
        )
    _warn_fallback(table, fallback)
    return table
