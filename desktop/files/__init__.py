"""The one place that opens a file someone hands to Pipedesk: a recording, a photo, a spreadsheet,
a text file. Every path (a task tab, the API, the LAN visitors' app, ``pipedesk run``, file runs,
the Ray workers) opens them through this package, never with a decoder of its own.

Every file is hostile until these modules have checked it:

* **Its format, from an allow-list.** A recording is opened only by the demuxers of real audio
  containers (:data:`desktop.files.audio.DEMUXERS`: never a playlist, a concat list or another
  protocol that would make FFmpeg open a second file); a photo only by Pillow's decoders of the
  formats the app lists (:data:`desktop.files.images.FORMATS`); a table only as CSV, TSV, XLSX,
  JSONL or plain text (:mod:`desktop.files.reader`).
* **Its declared size, before decoding.** A recording's declared length, a photo's pixels, a
  workbook's unpacked parts, cells and shared strings are checked before the data is decoded,
  and decoding stops at the limit (a bounded buffer), so a small file that declares a huge
  content costs at most the limit.
* **Who hands it in.** :data:`OWNER` (the person at this computer) and :data:`VISITOR` (LAN
  visitors and public deployments) have their own :class:`Limits`: visitors' are smaller.

Pure Python; the decoders (PyAV, Pillow, openpyxl) are imported when a file is opened. Runs on
the caller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.errors import UserError
from desktop.fmt import human_size


@dataclass(frozen=True)
class Limits:
    """What one file may cost, for one kind of person."""

    #: The longest recording accepted (longer ones are refused as soon as the limit is passed).
    audio_seconds: float
    #: Rows of a table for a file run (None: what the reader takes from anyone,
    #: :data:`desktop.files.table.MAX_ROWS`).
    table_rows: int | None
    who: str = "owner"

    @property
    def visitor(self) -> bool:
        return self.who == "visitor"


#: The person at this computer: a long meeting, a large spreadsheet.
OWNER = Limits(audio_seconds=3 * 60 * 60, table_rows=None, who="owner")
#: LAN visitors and public deployments: enough for their work, small enough that several at once
#: cannot exhaust the memory of the computer they visit (30 minutes of audio is 115 MB decoded).
VISITOR = Limits(audio_seconds=30 * 60, table_rows=5_000, who="visitor")


def upload_path(value: Any) -> str | None:
    """The file path of an input as Gradio hands it over unprocessed (a FileData model or a dict
    with ``path``), or a plain path string; None when nothing was given."""
    if value is None:
        return None
    value = value.get("path") if isinstance(value, dict) else getattr(value, "path", value)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return str(value)


def handed_in(source: Any, what: str, max_bytes: int) -> Path:
    """The regular file ``source`` names (a path or an upload), of 1 to ``max_bytes`` bytes; else a
    UserError naming it as ``what`` ("a recording", "an image"). A folder, a device or a pipe is
    not a file anybody hands in."""
    path = upload_path(source)
    if path is None:
        raise UserError(f"Please choose {what}: none was given.")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"The {what.split(' ', 1)[1]} {file.name} could not be found.")
    size = file.stat().st_size
    if size == 0:
        raise UserError(f"{file.name} is empty (0 bytes): there is no {what.split(' ', 1)[1]} in it.")
    if size > max_bytes:
        raise UserError(
            f"{file.name} is too large ({human_size(size)}); the limit is {human_size(max_bytes)}."
        )
    return file
