"""Reading a Parquet file for a file run, never trusting the sizes it declares more than needed.

A Parquet file says in its footer how many rows and columns it holds and what its column chunks
unpack to: those are checked against the table limits before any page is decompressed, and the
rows are then read a few thousand at a time, each checked as it comes. Values keep their types
(numbers stay numbers, as from a workbook); dates and other types become text. pyarrow is
imported when a Parquet file comes. Runs on the caller's thread.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from desktop.errors import UserError
from desktop.files.table import Table, check_size, unique_names

#: What a Parquet file's columns may unpack to, all together (as for a workbook's parts).
MAX_UNPACKED_BYTES = 1024**3
BATCH_ROWS = 4_096


def read_parquet(path: Path, name: str) -> Table:
    """The rows of the Parquet file ``path``; UserError when it is not one or is too large."""
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:  # pragma: no cover - pyarrow is a dependency
        raise UserError("Reading Parquet needs pyarrow: pip install pyarrow.") from None
    invalid = UserError(f"{name} is not a valid Parquet file: it could not be opened.")
    try:
        parquet = pq.ParquetFile(path)
        meta = parquet.metadata
        names = list(parquet.schema_arrow.names)
        unpacked = sum(
            meta.row_group(g).column(c).total_uncompressed_size
            for g in range(meta.num_row_groups)
            for c in range(meta.num_columns)
        )
    except (OSError, ValueError, pa.ArrowException):
        raise invalid from None
    columns = unique_names(names)
    check_size(name, meta.num_rows, len(columns))
    if unpacked > MAX_UNPACKED_BYTES:
        raise UserError(
            f"{name} unpacks to {unpacked / 1024**3:,.1f} GB; Pipedesk reads Parquet files of up to "
            f"{MAX_UNPACKED_BYTES / 1024**3:,.0f} GB unpacked. Split it."
        )
    rows: list[list[Any]] = []
    try:
        for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
            values = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
            rows.extend([_cell(column[r]) for column in values] for r in range(batch.num_rows))
            check_size(name, len(rows), len(columns))
    except (OSError, ValueError, pa.ArrowException):
        raise invalid from None
    return Table(name=name, format="parquet", columns=columns, rows=rows)


def _cell(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool, list, dict)):
        return value
    return str(value)  # dates, times, decimals, bytes: as text
