"""Reading an Excel workbook (.xlsx) for a batch run, row by row, never trusting its own sizes.

A worksheet declares its size (``<dimension ref="A1:XFD1048576"/>``) and openpyxl pads every
row it returns to that width: a 1.5 KB file could ask for 17 billion cells. Here the declared
dimension is dropped, rows come lazily from openpyxl's read-only mode, each row keeps only up
to its last value, the table is as wide as its widest row of values, and the limits of
``desktop.batchfiles`` are checked as rows come. Before openpyxl opens the file, the sizes the
zip declares for its parts are added up (zipfile never unpacks past them), so the XML behind
the cells is bounded too. Runs on the caller's thread.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import ParseError

from desktop.batchfiles import MAX_COLUMNS, Table, check_size, unique_names, without_blank_tail
from desktop.errors import UserError

#: The most a workbook's parts may unpack to, all together (a full 20-million-cell sheet
#: takes well under this).
MAX_UNPACKED_BYTES = 1024**3
_EMPTY = ()  # every blank row: a million of them cost one tuple


def read_xlsx(path: Path, name: str) -> Table:
    """The first worksheet with data; its first row is the header. UserError otherwise."""
    from openpyxl import load_workbook

    invalid = UserError(f"{name} is not a valid Excel workbook (.xlsx): it could not be opened.")
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise invalid from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise UserError(
            f"{name} unpacks to {unpacked / 1024**3:,.1f} GB; Pipedesk reads workbooks of up to "
            f"{MAX_UNPACKED_BYTES / 1024**3:,.0f} GB unpacked. Save it as CSV or split it."
        )
    try:
        workbook = load_workbook(path, read_only=True, data_only=True)
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, ParseError):
        raise invalid from None
    try:
        for sheet in workbook.worksheets:
            table = _sheet_table(sheet, name)
            if table is not None:
                return table
    except (zipfile.BadZipFile, KeyError, OSError, ValueError, ParseError):
        raise invalid from None
    finally:
        workbook.close()
    raise UserError(f"{name} is empty: there are no rows to analyse.")


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
    extra = row[MAX_COLUMNS:]
    if extra and extra.count(None) != len(extra) and not all(_blank(v) for v in extra):
        check_size(name, 1, MAX_COLUMNS + 1)
    end = min(len(row), MAX_COLUMNS)
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
