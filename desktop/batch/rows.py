"""What a file run reads from a table: one column's texts, or (a task that reads whole rows) every row
as a dict of column -> text. One place for the CLI, the Batch tab and the benchmarks.

Pure Python on the caller's thread.
"""

from __future__ import annotations

from typing import Any

from desktop.files.table import Table
from desktop.tasks.spec import TaskSpec


def file_values(table: Table, spec: TaskSpec, column: str | None) -> list[Any]:
    """Each row's value for ``spec``: the text of ``column``, or the whole row (column -> text, each
    cell cut as a column's texts are) when the task reads rows."""
    if table.files is not None:  # files handed in one by one: the rows show their names
        return list(table.files)
    if not spec.reads_rows:
        return table.texts(column or table.guess_column())
    by_column = [table.texts(name) for name in table.columns]
    return [dict(zip(table.columns, cells, strict=True)) for cells in zip(*by_column, strict=True)]
