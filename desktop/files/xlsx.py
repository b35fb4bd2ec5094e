"""Reading an Excel workbook (.xlsx) for a batch run, row by row, never trusting its own sizes.

A worksheet declares its size (``<dimension ref="A1:XFD1048576"/>``) and openpyxl pads every
row it returns to that width: a 1.5 KB file could ask for 17 billion cells. Here the declared
dimension is dropped, rows come lazily from openpyxl's read-only mode, each row keeps only up
to its last value, the table is as wide as its widest row of values, and the limits of
``desktop.files.reader`` are checked as rows come.

openpyxl also builds each ``<row>`` element whole (already while opening the file), and parses
some parts (styles, the workbook) whole: a 9 KB file holding one row of two million empty cells
would take gigabytes. So before openpyxl sees the file, the archive is checked (see
:func:`check_archive`): what its parts unpack to, and its XML walked once with expat, which
builds no tree, stopping at the first element past a limit. Runs on the caller's thread.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import IO, Any
from xml.etree.ElementTree import ParseError
from xml.parsers import expat

from desktop.errors import UserError
from desktop.files import table as limits  # the limits are read when used (tests lower them)
from desktop.files.table import Table, check_size, unique_names, without_blank_tail

#: The most a workbook's parts may unpack to, all together (a full 20-million-cell sheet
#: takes well under this).
MAX_UNPACKED_BYTES = 1024**3
#: The most one part other than a worksheet or the shared strings may unpack to: openpyxl
#: parses those whole (styles of real workbooks take a few MB at most).
MAX_OTHER_PART_BYTES = 64 * 1024**2
#: What Excel itself allows in one sheet: a file with more was not written by a spreadsheet.
EXCEL_ROWS, EXCEL_COLUMNS = 1_048_576, 16_384
#: Different texts a workbook may hold (its shared strings, which openpyxl loads whole before the
#: first row is read: five million of them took 800 MB and half a minute), and their characters.
#: A workbook also never needs more of them than it has cells.
MAX_SHARED_STRINGS = 1_000_000
MAX_SHARED_CHARS = 100_000_000
_EMPTY = ()  # every blank row: a million of them cost one tuple
_ERRORS = (zipfile.BadZipFile, KeyError, OSError, ValueError, ParseError, expat.ExpatError)


def read_xlsx(path: Path, name: str, sheet: str | None = None) -> Table:
    """The sheet named ``sheet``, or else the first sheet with a column of text (else the first
    with data), as a Table whose first row is the header; the other sheets are named in a
    warning. UserError otherwise."""
    from openpyxl import load_workbook

    invalid = UserError(f"{name} is not a valid Excel workbook (.xlsx): it could not be opened.")
    try:
        check_archive(path, name)
        workbook = load_workbook(path, read_only=True, data_only=True)
    except _ERRORS:
        raise invalid from None
    try:
        names = list(workbook.sheetnames)
        table = _chosen_sheet(workbook, names, name, sheet)
    except _ERRORS:
        raise invalid from None
    finally:
        workbook.close()
    table.sheets = names
    others = [other for other in names if other != table.sheet]
    if others and sheet is None:
        table.warnings.append(
            f"{name} has {len(names)} sheets: the rows come from {table.sheet!r}, the first with text; "
            f"the others ({', '.join(repr(o) for o in others)}) were not read. Choose another sheet if "
            "you meant one of them."
        )
    return table


def _chosen_sheet(workbook: Any, names: list[str], name: str, wanted: str | None) -> Table:
    if wanted is not None:
        if wanted not in names:
            raise UserError(f"{name} has no sheet {wanted!r}. Its sheets are: {', '.join(names)}.")
        table = _sheet_table(workbook[wanted], name)
        if table is None:
            raise UserError(f"The sheet {wanted!r} of {name} is empty: there are no rows to analyse.")
        table.sheet = wanted
        return table
    first = None
    for title in names:
        table = _sheet_table(workbook[title], name)
        if table is None:
            continue
        table.sheet = title
        if table.rows and table.text_columns():
            return table
        first = first or table
    if first is None:
        raise UserError(f"{name} is empty: there are no rows to analyse.")
    return first


def check_archive(path: Path, name: str) -> None:
    """UserError unless openpyxl can open ``path`` in bounded memory: the parts unpack to at
    most MAX_UNPACKED_BYTES (and MAX_OTHER_PART_BYTES for parts parsed whole), no sheet has
    a row of more cells or more rows than Excel allows (or than a visitor's file may have),
    nor more than MAX_CELLS cells, and the shared strings are no more than MAX_SHARED_STRINGS
    (and no more than the cells), of MAX_SHARED_CHARS characters in all. zipfile never unpacks
    past the sizes declared, so they hold."""
    again = "it was not saved by a spreadsheet. Open it in one and save it again."
    with zipfile.ZipFile(path) as archive:
        parts = archive.infolist()
        unpacked = sum(info.file_size for info in parts)
        if unpacked > MAX_UNPACKED_BYTES:
            raise UserError(
                f"{name} unpacks to {unpacked / 1024**3:,.1f} GB; Pipedesk reads workbooks of up to "
                f"{MAX_UNPACKED_BYTES / 1024**3:,.0f} GB unpacked. Save it as CSV or split it."
            )
        for info in parts:
            streamed = "worksheets/" in info.filename or info.filename.endswith("sharedStrings.xml")
            if not streamed and info.file_size > MAX_OTHER_PART_BYTES:
                raise UserError(
                    f"{name} has a part ({info.filename}) far larger than a workbook needs: {again}"
                )
        counts = _Counts()
        for info in parts:
            if info.filename.endswith((".xml", ".rels")):
                with archive.open(info) as stream:
                    _walk(stream, name, again, counts)
    if counts.strings > min(MAX_SHARED_STRINGS, counts.cells + 1_000):
        raise UserError(
            f"{name} holds {counts.strings:,} texts (shared strings) for {counts.cells:,} cells; Pipedesk reads "
            f"workbooks of up to {MAX_SHARED_STRINGS:,} texts, and never more than their "
            f"cells: {again}"
        )


class _Counts:
    """Cells of every sheet and shared strings of a workbook, as its parts are walked."""

    cells = 0
    strings = 0
    chars = 0


def _walk(stream: IO[bytes], name: str, again: str, counts: _Counts) -> None:
    """Count rows, cells per row, cells and shared strings (and their characters) in one XML
    part, without a tree."""
    rows = cells = in_row = strings = 0
    most_rows = limits.row_limit() if limits.row_limit() < limits.MAX_ROWS else EXCEL_ROWS

    def text(data: str) -> None:
        counts.chars += len(data)
        if counts.chars > MAX_SHARED_CHARS:
            raise UserError(
                f"{name} holds more than {MAX_SHARED_CHARS:,} characters of text; Pipedesk reads "
                "workbooks of up to that much. Save it as CSV or split it."
            )

    def start(tag: str, _attributes: Any) -> None:
        nonlocal rows, cells, in_row, strings
        if ":" in tag:  # a prefixed name, as in <x:c>
            tag = tag[tag.rfind(":") + 1 :]
        if tag == "c":
            counts.cells += 1
            cells += 1
            in_row += 1
            if in_row > EXCEL_COLUMNS:
                raise UserError(
                    f"{name} has a row of more than {EXCEL_COLUMNS:,} cells, more than Excel allows: {again}"
                )
            if cells > limits.MAX_CELLS:
                check_size(name, 0, 0, cells=cells)
        elif tag == "row":
            rows += 1
            in_row = 0
            if rows > EXCEL_ROWS:
                raise UserError(
                    f"{name} has a sheet of more than {EXCEL_ROWS:,} rows, more than Excel allows: {again}"
                )
            if rows > most_rows:
                check_size(name, rows, 1)
        elif tag == "si":
            strings += 1
            counts.strings += 1
            if counts.strings > MAX_SHARED_STRINGS:
                raise UserError(
                    f"{name} holds more than {MAX_SHARED_STRINGS:,} texts (shared strings); Pipedesk reads "
                    "workbooks of up to that many. Save it as CSV or split it."
                )
            if strings == 1:
                parser.CharacterDataHandler = text  # only the shared strings' part counts its text

    parser = expat.ParserCreate()
    parser.ordered_attributes = True  # a list is cheaper than a dict, and they are not read
    parser.StartElementHandler = start
    parser.ParseFile(stream)


def _sheet_table(sheet: Any, name: str) -> Table | None:
    """The sheet as a Table, or None when it holds no value at all."""
    sheet.reset_dimensions()  # never pad rows to the width the file declares
    rows = (_values(row, name) for row in sheet.iter_rows(values_only=True))
    header = next(rows, None)
    if header is None:
        return None
    header = list(header)
    width = len(header)
    body: list[list[Any]] = []
    for number, row in enumerate(without_blank_tail(rows, _is_empty, name)):
        body.append(row or [])  # blank rows share one empty tuple until they become rows
        width = max(width, len(row))
        check_size(name, number + 1, width)
    if not header and not body:
        return None
    columns = unique_names(["" if v is None else str(v) for v in header + [None] * (width - len(header))])
    for row in body:
        row.extend([None] * (width - len(row)))
    return Table(name=name, format="xlsx", columns=columns, rows=body)


def _values(row: tuple[Any, ...] | list[Any], name: str) -> list[Any] | tuple[()]:
    """A row's values up to its last one that is not blank; UserError past MAX_COLUMNS.

    openpyxl pads a row up to its last cell, even an empty styled one: an all-empty row
    is recognised at C speed, and a row is wider than allowed only when a value lies
    beyond the limit.
    """
    if row.count(None) == len(row):
        return _EMPTY
    extra = row[limits.MAX_COLUMNS :]
    if extra and extra.count(None) != len(extra) and not all(_blank(v) for v in extra):
        check_size(name, 1, limits.MAX_COLUMNS + 1)
    end = min(len(row), limits.MAX_COLUMNS)
    while end and _blank(row[end - 1]):
        end -= 1
    return [_cell(v) for v in row[:end]] if end else _EMPTY


def _is_empty(row: list[Any] | tuple[()]) -> bool:
    return not row


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # dates, times, decimals: as Excel shows them, more or less


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
