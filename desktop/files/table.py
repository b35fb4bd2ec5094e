"""A table read from a file, and the limits every reader checks as rows come in.

The limits are module attributes read when used, so tests (and a future setting) can lower them.
Pure Python; runs on the caller's thread.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from desktop.errors import UserError
from desktop.files import OWNER, Limits

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
#: Column names that usually hold the text to analyse, best first.
TEXT_NAMES = ("text", "review", "comment", "comments", "content", "body", "message", "sentence", "answer")
PREVIEW_ROWS = 10
#: Rows looked at to tell which columns hold text.
SAMPLE_ROWS = 200
#: The share of a column's first values that must be words for it to count as text.
TEXT_SHARE = 0.5
_HAS_LETTER = re.compile(r"[^\W\d_]")
#: Whose file is being read on this thread (see :func:`reading_for`).
_READER: ContextVar[Limits] = ContextVar("pipedesk_table_reader", default=OWNER)


@dataclass
class Table:
    """A file's rows, in file order, with what went wrong while reading it."""

    name: str
    format: str
    columns: list[str]
    rows: list[list[Any]]
    warnings: list[str] = field(default_factory=list)
    notes: dict[int, str] = field(default_factory=dict)  # row index -> note for the results
    #: Rows name files (a list of recordings): a relative name is relative to this folder (the
    #: list's own), not to wherever the command was typed. None: rows are texts.
    base: Path | None = None
    #: What a row's cell stands for: "text", or a file of this kind ("audio", "image").
    holds: str = "text"
    #: The files the rows stand for, where the rows show only their names (uploaded photos).
    files: list[str] | None = None
    #: A workbook's sheets, in order, and the one these rows come from (None: not a workbook).
    sheets: list[str] = field(default_factory=list)
    sheet: str | None = None

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
            if self.base is not None:
                text = _file_name(text, self.base)
            elif len(text) > MAX_CELL_CHARS:
                text = text[:MAX_CELL_CHARS]
                self.add_note(row_number, f"text cut to its first {MAX_CELL_CHARS:,} characters")
            out.append(text)
        return out

    def add_note(self, row: int, note: str) -> None:
        existing = self.notes.get(row)
        if existing and note in existing:
            return
        self.notes[row] = f"{existing}; {note}" if existing else note

    def holds_text(self, column: str) -> bool:
        """True when ``column`` holds text to analyse: most of its first values that are not empty
        are words (a letter in them), not numbers, dates or codes of digits."""
        index = self.column_index(column)
        values = [row[index] for row in self.rows[:SAMPLE_ROWS] if index < len(row)]
        filled = [v for v in values if v is not None and str(v).strip()]
        if not filled:
            return False
        words = [v for v in filled if isinstance(v, str) and _HAS_LETTER.search(v)]
        return len(words) >= TEXT_SHARE * len(filled)

    def text_columns(self) -> list[str]:
        """The columns that hold text (:meth:`holds_text`), in file order."""
        return [column for column in self.columns if self.holds_text(column)]

    def guess_column(self) -> str:
        """The column most likely to hold the texts: among the columns that hold text, a usual
        name, else the longest on average. UserError listing the columns when none holds text:
        a file of ids, prices and quantities is never analysed as if it were reviews."""
        candidates = self.text_columns()
        if not candidates:
            raise UserError(
                f"{self.name} has no column of text to analyse: its columns ({', '.join(self.columns)}) "
                "hold numbers, dates or nothing. Choose the column to analyse yourself if you mean one of them."
            )
        lowered = [c.strip().lower() for c in candidates]
        for name in TEXT_NAMES:
            if name in lowered:
                return candidates[lowered.index(name)]
        sample = self.rows[:SAMPLE_ROWS]

        def average_length(column: str) -> float:
            i = self.column_index(column)
            values = [row[i] for row in sample if i < len(row)]
            texts = [v for v in values if isinstance(v, str)]
            return sum(len(t) for t in texts) / max(1, len(values))

        return max(candidates, key=average_length)

    def preview(self, rows: int = PREVIEW_ROWS) -> list[list[str]]:
        """The first ``rows`` rows as short strings, for a table a person glances at."""
        return [[_short(value) for value in row] for row in self.rows[:rows]]


def max_file_bytes() -> int:
    value = os.environ.get("PIPEDESK_BATCH_MAX_MB", "").strip()
    return int(float(value) * 1024 * 1024) if value else MAX_FILE_MB * 1024 * 1024


@contextmanager
def reading_for(limits: Limits) -> Iterator[None]:
    """Tables read on this thread inside the block are read within ``limits`` (a visitor's file
    stops at the visitors' row limit as it is read, not after it was built)."""
    token = _READER.set(limits)
    try:
        yield
    finally:
        _READER.reset(token)


def reader_limits() -> Limits:
    """Whose file is being read on this thread (the owner's unless :func:`reading_for` says)."""
    return _READER.get()


def row_limit() -> int:
    """The most rows the table being read may have (:data:`MAX_ROWS`, fewer for a visitor)."""
    wanted = _READER.get().table_rows
    return MAX_ROWS if wanted is None else min(MAX_ROWS, wanted)


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
    most = row_limit()
    if rows > most:
        where = " from a visitor" if _READER.get().visitor else ""
        raise UserError(
            f"{name} has more than {most:,} rows; Pipedesk reads up to {most:,} at a time{where}. "
            "Split it into smaller files."
        )
    if (rows * columns if cells is None else cells) > MAX_CELLS:
        raise UserError(
            f"{name} has more than {MAX_CELLS:,} cells (rows × columns); Pipedesk reads up to "
            f"{MAX_CELLS:,} at a time. Remove the columns you do not need, or split it."
        )


def without_blank_tail(records: Iterable[R], blank: Callable[[R], bool], name: str) -> Iterator[R]:
    """``records`` without the blank ones at the end, lazily, refusing more than :func:`row_limit`.

    A run of blank records is held back until a record with content follows (then they
    are rows, counted with it) or the records end (then they are dropped). Only blanks
    that could still become rows are stored, and no more than twice the limit of records
    are looked at, blank or not: a sheet whose next row is numbered 4,000,000,000 cannot
    keep the reader busy.
    """
    held: list[R] = []
    waiting = kept = 0
    most = row_limit()
    for record in records:
        if blank(record):
            waiting += 1
            if kept + waiting <= most:
                held.append(record)
            elif kept + waiting > 2 * most:
                check_size(name, kept + waiting, 1)
            continue
        check_size(name, kept + waiting + 1, 1)
        yield from held
        yield record
        kept += waiting + 1
        held.clear()
        waiting = 0


def list_rows(rows: list[int], shown: int = 10) -> str:
    """'2, 5 and 9' (1-based), with 'and N more' past ``shown``."""
    numbers = [f"{r + 1:,}" for r in rows[:shown]]
    if len(rows) > shown:
        return f"{', '.join(numbers)} and {len(rows) - shown:,} more"
    return numbers[0] if len(numbers) == 1 else f"{', '.join(numbers[:-1])} and {numbers[-1]}"


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


def _file_name(name: str, base: Path) -> str:
    """A file named in a list, as an absolute path ('' for an empty cell)."""
    if not name.strip():
        return ""
    path = Path(name.strip()).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())
