"""Writing a batch run's results: the input rows with the result columns appended.

CSV/TSV (UTF-8), XLSX and JSONL, chosen by the file name. Rows keep the input
order; rows with no result (a cancelled run) get empty result columns and the
note "not analysed". Files are written next to their destination and moved
into place, so a crash never leaves half a file under the name asked for.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from desktop.batchfiles import Table
from desktop.errors import UserError

EXPORT_FORMATS = {".csv": "csv", ".tsv": "tsv", ".xlsx": "xlsx", ".jsonl": "jsonl"}
NOTE = "note"
NOT_DONE = "not analysed (the run was cancelled before this row)"
XLSX_CELL_LIMIT = 32_767


def export_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise UserError(
            f"{path.name}: results can be written as .csv, .tsv, .xlsx or .jsonl, not {suffix or 'no extension'}."
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
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    tmp = Path(tmp_name)
    try:
        {"csv": _csv, "tsv": _csv, "xlsx": _xlsx, "jsonl": _jsonl}[fmt](tmp, header, rows, fmt)
        os.replace(tmp, path)
    except OSError as exc:
        raise UserError(f"Could not write {path}: {exc.strerror or exc}.") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _flat(value: Any) -> Any:
    """Scalars as they are; lists and dicts (NER entities) as JSON text; None as empty."""
    if value is None:
        return ""
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def _csv(path: Path, header: list[str], rows: list[list[Any]], fmt: str) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out, delimiter="\t" if fmt == "tsv" else ",")
        writer.writerow(header)
        writer.writerows([_flat(v) for v in row] for row in rows)


def _xlsx(path: Path, header: list[str], rows: list[list[Any]], fmt: str) -> None:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    def cell(value: Any) -> Any:
        value = _flat(value)
        if isinstance(value, str):
            value = ILLEGAL_CHARACTERS_RE.sub("", value)[:XLSX_CELL_LIMIT]
        return value

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("Results")
    sheet.append(header)
    for row in rows:
        sheet.append([cell(v) for v in row])
    workbook.save(path)


def _jsonl(path: Path, header: list[str], rows: list[list[Any]], fmt: str) -> None:
    with path.open("w", encoding="utf-8", newline="\n") as out:
        for row in rows:
            out.write(json.dumps(dict(zip(header, row, strict=True)), ensure_ascii=False, default=str) + "\n")
