"""Files in and out for the Ray engine: what the local engine reads, plus Parquet and folders.

A file the local reader knows (CSV, TSV, XLSX, JSONL, TXT) is read on the driver by
:func:`desktop.files.reader.read_rows`, with its limits and notes. A Parquet file, a folder of
Parquet, CSV or JSONL files, or any URI a pyarrow filesystem understands (``s3://...``) is read
by Ray Data itself, on the workers, with no size limit. Results go where the local writer writes
(CSV, TSV, XLSX, JSONL: written by it, on the driver), to one Parquet file (on the driver), or to
a folder of Parquet parts (written by the workers: the driver never holds the rows).

In Parquet, values keep their types (a score is a number); lists and dicts (NER's entities) are
JSON text, as in CSV (:mod:`desktop.batch.writer` decides, for both engines). Runs on the driver's
thread.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from desktop import fs
from desktop.batch.writer import (
    export_format,
    merged_rows,
    numeric_columns,
    result_names,
    rows_as_arrow,
)
from desktop.errors import UserError
from desktop.files.reader import read_rows
from desktop.files.table import Table

FLAT, PARQUET, FOLDER = "flat", "parquet", "folder"
#: What Ray Data reads natively: a file's suffix -> the reader, and the suffixes it takes.
NATIVE = {
    ".parquet": ("parquet", ["parquet"]),
    ".csv": ("csv", ["csv"]),
    ".jsonl": ("json", ["jsonl", "ndjson", "json"]),
    ".ndjson": ("json", ["jsonl", "ndjson", "json"]),
    ".json": ("json", ["jsonl", "ndjson", "json"]),
}
#: Rows looked at to guess the text column of a dataset (as the file reader does).
SAMPLE_ROWS = 200
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(path: str) -> bool:
    """True for ``s3://bucket/key`` and other URIs (not for ``C:\\`` or plain paths)."""
    return bool(_SCHEME.match(path))


def output_kind(output: str) -> str:
    """FLAT (.csv .tsv .xlsx .jsonl), PARQUET (one .parquet file) or FOLDER (ends in '/', or a folder
    that exists); UserError for anything else."""
    if output.endswith(("/", os.sep)) or (not is_uri(output) and Path(output).expanduser().is_dir()):
        return FOLDER
    if output.lower().endswith(".parquet"):
        return PARQUET
    if is_uri(output):
        raise UserError(f"{output}: the Ray engine writes to URIs as .parquet or as a folder (ending in /).")
    try:
        export_format(Path(output))
    except UserError:
        raise UserError(
            f"{Path(output).name}: results can be written as .csv, .tsv, .xlsx, .jsonl, .parquet or "
            "into a folder of Parquet parts (a name ending in /)."
        ) from None
    return FLAT


def check_folder_is_empty(folder: str) -> None:
    """A folder output must be new or empty: parts are never mixed with other files."""
    from pyarrow import fs as pafs

    filesystem, base = _filesystem(folder)
    info = filesystem.get_file_info(base)
    if info.type == pafs.FileType.File:
        raise UserError(f"{folder} is a file; a folder of Parquet parts needs a folder name ending in /.")
    if info.type == pafs.FileType.Directory and filesystem.get_file_info(pafs.FileSelector(base)):
        raise UserError(f"{folder} is not empty: write the Parquet parts into a new or empty folder.")


def _filesystem(path: str) -> tuple[Any, str]:
    from pyarrow import fs as pafs

    if not is_uri(path):
        return pafs.LocalFileSystem(), str(Path(path).expanduser().resolve())
    try:
        return pafs.FileSystem.from_uri(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} cannot be reached: {str(exc).splitlines()[0]}") from None


# --- inputs -------------------------------------------------------------------------------


@dataclass
class Source:
    """The input of a run: a Table read on the driver, or files Ray Data reads (``paths``)."""

    name: str
    column: str
    guessed: bool
    table: Table | None = None
    texts: list[str] = field(default_factory=list)
    reader: str = ""
    paths: list[str] = field(default_factory=list)
    extensions: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)

    @property
    def native(self) -> bool:
        return self.table is None


def open_source(
    source: str, column: str | None, file_input: str | None = "text", folder: str | None = None
) -> Source:
    """Read ``source`` (the local engine's reader, for files it knows and for a task's folder of
    recordings or photos, ``folder``) or list its files (Ray Data); choose the text column."""
    local = None if is_uri(source) else Path(source).expanduser()
    own_folder = folder is not None and local is not None and local.is_dir()
    if local is not None and (own_folder or (not local.is_dir() and local.suffix.lower() != ".parquet")):
        table = read_rows(local, file_input, folder)
        chosen = table.guess_column() if column is None else table.columns[table.column_index(column)]
        texts = table.texts(chosen)
        return Source(table.name, chosen, column is None, table=table, texts=texts, columns=table.columns)
    reader, extensions, paths = _list_files(source)
    return Source(
        Path(source.rstrip("/")).name or source,
        column or "",
        column is None,
        reader=reader,
        paths=paths,
        extensions=extensions,
    )


def _list_files(source: str) -> tuple[str, list[str], list[str]]:
    """The reader and the files (sorted by name, hidden ones left out) of a file, folder or URI."""
    from pyarrow import fs as pafs

    filesystem, base = _filesystem(source)
    try:
        info = filesystem.get_file_info(base)
        if info.type == pafs.FileType.NotFound:
            raise UserError(f"{source} could not be found.")
        found = (
            [info]
            if info.type == pafs.FileType.File
            else filesystem.get_file_info(pafs.FileSelector(base, recursive=True))
        )
    except OSError as exc:
        raise UserError(f"{source} cannot be read: {str(exc).splitlines()[0]}") from None
    files = [
        entry.path
        for entry in found
        if entry.type == pafs.FileType.File
        and not any(p.startswith((".", "_")) for p in Path(entry.path).parts)
    ]
    kinds = {NATIVE[Path(p).suffix.lower()][0] for p in files if Path(p).suffix.lower() in NATIVE}
    if not kinds:
        raise UserError(f"{source} holds no Parquet, CSV or JSONL files to read.")
    if len(kinds) > 1:
        raise UserError(
            f"{source} mixes {', '.join(sorted(kinds))} files: put one kind of file in the folder you read."
        )
    reader = kinds.pop()
    extensions = next(ext for suffix, (kind, ext) in NATIVE.items() if kind == reader)
    paths = sorted(p for p in files if Path(p).suffix.lower().lstrip(".") in extensions)
    if is_uri(source):
        scheme = source.split("://", 1)[0]
        paths = [f"{scheme}://{p}" for p in paths]
    return reader, extensions, paths


def read_dataset(source: Source) -> Any:
    """The Ray dataset of a native source, rows in file order; the text column chosen."""
    import ray.data

    read = {"parquet": ray.data.read_parquet, "csv": ray.data.read_csv, "json": ray.data.read_json}
    kwargs: dict[str, Any] = {"file_extensions": source.extensions}
    if source.reader == "json":
        kwargs["lines"] = True
    try:
        dataset = read[source.reader](source.paths, **kwargs)
        sample = dataset.take(SAMPLE_ROWS)
        names = list(dataset.schema().names)
    except (OSError, ValueError) as exc:
        raise UserError(f"{source.name} could not be read: {str(exc).splitlines()[0]}") from None
    if not sample:
        raise UserError(f"{source.name} has no rows to analyse.")
    table = Table(source.name, source.reader, names, [[row.get(name) for name in names] for row in sample])
    source.columns = names
    source.column = table.guess_column() if source.guessed else names[table.column_index(source.column)]
    return dataset


# --- outputs ------------------------------------------------------------------------------


def table_as_arrow(
    table: Table, results: Mapping[int, Mapping[str, Any]], columns: Sequence[str], prefix: str
) -> Any:
    """What the local writer writes to a Parquet file, as an Arrow table."""
    header = [*table.columns, *result_names(table, columns, prefix)]
    return rows_as_arrow(header, merged_rows(table, results, columns), numeric_columns(table))


def write_parquet_file(arrow: Any, output: str) -> None:
    """One Parquet file, put in place atomically (on a URI: written by its filesystem)."""
    import pyarrow.parquet as pq

    if is_uri(output):
        pq.write_table(arrow, output)
        return
    try:
        fs.write_with(Path(output).expanduser(), lambda tmp: pq.write_table(arrow, str(tmp)))
    except OSError as exc:
        raise UserError(f"Could not write {output}: {exc.strerror or exc}.") from None
