"""Writing a batch run's results: the input rows with the result columns appended.

CSV/TSV, XLSX and JSONL, chosen by the file name. Rows keep the input order; rows
with no result (a cancelled run) get empty result columns and the note "not
analysed". Files are written next to their destination and moved into place, so a
crash never leaves half a file under the name asked for. Runs on the caller's thread
(the CLI's main thread, a Gradio worker for the Batch tab's download).

- CSV and TSV are UTF-8 with a BOM, so Excel on Windows shows accented letters.
- XLSX keeps numbers as numbers: result values are written with their own types (the
  score is a number), and so are cells of XLSX and JSONL inputs. Cells of CSV, TSV and
  TXT inputs are all text; a column of plain decimal numbers becomes a numeric column,
  any other column stays text exactly as read (see :func:`numeric_columns`).
- JSONL writes every value with its JSON type (entities stay lists of objects).
- Parquet keeps every value's type (a CSV's numeric columns as numbers, as in XLSX); lists and
  dicts (NER's entities) are JSON text, as in CSV. The Ray engine writes the same
  (:func:`rows_as_arrow`, :func:`arrow_array`).
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from desktop import fs
from desktop.errors import UserError
from desktop.files.table import Table

EXPORT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".xlsx": "xlsx", ".jsonl": "jsonl", ".parquet": "parquet"}
NOTE = "note"
NOT_DONE = "not analysed (the run was cancelled before this row)"
XLSX_CELL_LIMIT = 32_767
#: Input formats whose cells are all text (their numbers are recognised when writing XLSX).
UNTYPED_FORMATS = ("csv", "tsv", "txt")
#: Digits a spreadsheet number keeps exactly (Excel shows 15 significant digits).
NUMBER_DIGITS = 15
_PLAIN_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")


def export_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UserError(
            f"{path.name}: results can be written as .csv, .tsv, .xlsx, .jsonl or .parquet, not "
            f"{suffix or 'no extension'}."
        )
    return EXPORT_FORMATS[suffix]


def result_names(table: Table, columns: Sequence[str], prefix: str) -> list[str]:
    """Result column names, renamed ``{prefix}_{name}`` where the input already has that name."""
    taken = set(table.columns)
    names = []
    for column in [*columns, NOTE]:
        name = column if column not in taken else f"{prefix}_{column}"
        while name in taken:
            name += "_"
        taken.add(name)
        names.append(name)
    return names


def merged_rows(
    table: Table, results: Mapping[int, Mapping[str, Any]], columns: Sequence[str]
) -> list[list[Any]]:
    """Each input row + its result values + the note (file notes and run notes joined)."""
    rows = []
    for index, row in enumerate(table.rows):
        result = results.get(index)
        values = [None if result is None else result.get(column) for column in columns]
        notes = [table.notes.get(index, ""), NOT_DONE if result is None else str(result.get(NOTE) or "")]
        rows.append([*row, *values, "; ".join(n for n in notes if n)])
    return rows


def plain_number(text: str) -> int | float | None:
    """``text`` as a number when it is a plain decimal number that survives being one.

    A plain decimal number: an optional minus, digits with no leading zero (``0`` and
    ``0.5`` are fine), an optional fraction after a dot, at most 15 digits in all (what a
    spreadsheet keeps exactly). ``12``, ``-3.5`` and ``0.25`` are; ``007``, ``0123``,
    ``1e5``, ``+5``, ``1,000``, `` 12``, ``.5``, ``-0``, ``NaN`` and card or order numbers
    of 16 digits and more are not (None).
    """
    if not _PLAIN_NUMBER.fullmatch(text):
        return None
    if len(text) - text.startswith("-") - ("." in text) > NUMBER_DIGITS:
        return None
    number = float(text) if "." in text else int(text)
    return None if number == 0 and text.startswith("-") else number


def numeric_columns(table: Table) -> set[int]:
    """The input columns written as numbers in XLSX: for a CSV, TSV or TXT input, those
    whose every cell is a plain number (:func:`plain_number`) or empty. A column with one
    code such as ``007`` stays all text, so codes never lose their zeros and a column
    never mixes types. XLSX and JSONL inputs: none, their cells keep their own types."""
    if table.format not in UNTYPED_FORMATS:
        return set()
    columns = set(range(len(table.columns)))
    for row in table.rows:
        for column in list(columns):
            value = row[column]
            if isinstance(value, str) and value.strip() and plain_number(value) is None:
                columns.discard(column)
        if not columns:
            break
    return columns


def write_results(
    table: Table,
    results: Mapping[int, Mapping[str, Any]],
    columns: Sequence[str],
    path: str | Path,
    prefix: str = "result",
) -> Path:
    """Write the table with result ``columns`` appended to ``path`` (format from its suffix)."""
    path = Path(path)
    fmt = export_format(path)
    header = [*table.columns, *result_names(table, columns, prefix)]
    rows = merged_rows(table, results, columns)

    def writer(tmp: Path) -> None:
        if fmt == "xlsx":
            _xlsx(tmp, header, rows, numeric_columns(table))
        elif fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(rows_as_arrow(header, rows, numeric_columns(table)), str(tmp))
        else:
            {"csv": _csv, "tsv": _csv, "jsonl": _jsonl}[fmt](tmp, header, rows, fmt)

    try:
        fs.write_with(path, writer)
    except OSError as exc:
        raise UserError(f"Could not write {path}: {exc.strerror or exc}.") from None
    return path


def _flat(value: Any) -> Any:
    """Scalars as they are; lists and dicts (NER entities) as JSON text; None as empty."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _csv(path: Path, header: list[str], rows: list[list[Any]], fmt: str) -> None:
    with path.open("w", encoding="utf-8-sig", newline="") as out:
        writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",")
        writer.writerow(header)
        writer.writerows([_flat(v) for v in row] for row in rows)


def _xlsx(path: Path, header: list[str], rows: list[list[Any]], numeric: set[int]) -> None:
    """The rows in one sheet; the text in the ``numeric`` columns written as numbers."""
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: Any, column: int) -> Any:
        value = _flat(value)
        if isinstance(value, str):
            if column in numeric and value.strip():
                return plain_number(value)
            value = ILLEGAL_CHARACTERS_RE.sub("", value)[:XLSX_CELL_LIMIT]
        return value

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Results")
    sheet.append(header)
    for row in rows:
        sheet.append([cell(v, i) for i, v in enumerate(row)])
    workbook.save(path)


def _jsonl(path: Path, header: list[str], rows: list[list[Any]], fmt: str) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False, default=str) + "\n")


def flat_value(value: Any) -> Any:
    """Lists and dicts (NER's entities) as JSON text, as CSV writes them; the rest as is."""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def arrow_array(values: Sequence[Any], kind: Any = None) -> Any:
    """An Arrow array of ``values`` (of type ``kind`` if given): lists and dicts as JSON text, a column
    of mixed types as text, a column of nothing but empty cells as text. Any thread (Ray workers too)."""
    import pyarrow as pa

    flat = [flat_value(value) for value in values]
    try:
        array = pa.array(flat, type=kind)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        array = pa.array([None if value is None else str(value) for value in flat], type=pa.string())
    return array.cast(pa.string()) if pa.types.is_null(array.type) else array


def rows_as_arrow(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: set[int]) -> Any:
    """``rows`` under ``header`` as an Arrow table, the text of the ``numeric`` columns as numbers."""
    import pyarrow as pa

    arrays = []
    for index in range(len(header)):
        cells = [row[index] for row in rows]
        if index in numeric:
            cells = [(plain_number(c) if c.strip() else None) if isinstance(c, str) else c for c in cells]
        arrays.append(arrow_array(cells))
    return pa.table(arrays, names=list(header))
