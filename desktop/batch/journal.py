"""The results journal of a batch run: finished rows on disk as soon as they are computed.

A JSON Lines file next to the output (``OUTPUT.partial.jsonl``): a header line
saying which run it belongs to (task, model, column, input file size and
hash), then one line per finished row. It is flushed and synced after every
batch, so a crash or Ctrl+C loses at most the batch in flight, and
``pipedesk batch ... --resume`` reads it back to skip the rows already done.
A half-written last line (a crash mid-write) is ignored. Written on the batch
thread only.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import IO, Any

from desktop.errors import UserError

VERSION = 1
SUFFIX = ".partial.jsonl"


def journal_path(output: Path) -> Path:
    return output.with_name(output.name + SUFFIX)


def file_fingerprint(path: Path) -> dict[str, Any]:
    """Size and SHA-256 of ``path``: a resumed run must read the same input. For a folder (of
    recordings), the names, sizes and modification times of the files in it."""
    digest = hashlib.sha256()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file())
        for file in files:
            stat = file.stat()
            digest.update(
                f"{file.relative_to(path).as_posix()}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode()
            )
        return {"files": len(files), "sha256": digest.hexdigest()}
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


class Journal:
    """Append finished rows; read them back on resume."""

    def __init__(self, path: Path, header: dict[str, Any], done: dict[int, dict[str, Any]]) -> None:
        self.path = path
        self.header = header
        self.done = done
        self._handle: IO[str] | None = None

    @classmethod
    def open(cls, path: Path, header: dict[str, Any], resume: bool) -> Journal:
        """Start a journal at ``path``, or (``resume``) continue the one there if it is the same run."""
        header = {"pipedesk_batch": VERSION, **header}
        done: dict[int, dict[str, Any]] = {}
        if path.exists():
            if not resume:
                raise UserError(
                    f"{path} holds the results of an interrupted run. Add --resume to continue it, "
                    "or delete that file to start again."
                )
            done = _read(path, header)
        return cls(path, header, done)

    def write(self, results: list[tuple[int, dict[str, Any]]]) -> None:
        """Record finished rows and make sure they reach the disk."""
        if not results:
            return
        lines = "".join(
            json.dumps({"row": row, "values": values}, ensure_ascii=False, default=str) + "\n"
            for row, values in results
        )
        if self._handle is None:
            # Created on the first result, so a run that fails before any leaves nothing behind.
            fresh = not self.path.exists()
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
            if fresh:
                self._handle.write(json.dumps(self.header, ensure_ascii=False) + "\n")
        self._handle.write(lines)
        self._handle.flush()
        os.fsync(self._handle.fileno())
        for row, values in results:
            self.done[row] = values

    def close(self) -> None:
        if self._handle is not None and not self._handle.closed:
            self._handle.close()

    def remove(self) -> None:
        """The run is finished and its output written: the journal is no longer needed."""
        self.close()
        self.path.unlink(missing_ok=True)


def _read(path: Path, header: dict[str, Any]) -> dict[int, dict[str, Any]]:
    with path.open("r", encoding="utf-8", errors="replace") as handle:
        lines = handle.read().split("\n")
    try:
        saved = json.loads(lines[0])
    except ValueError:
        saved = None
    if not isinstance(saved, dict) or saved.get("pipedesk_batch") != VERSION:
        raise UserError(f"{path} is not a Pipedesk results journal; move it away and run again.")
    different = [key for key in header if key != "pipedesk_batch" and saved.get(key) != header[key]]
    if different:
        what = ", ".join(f"{key} was {saved.get(key)!r}" for key in different)
        raise UserError(
            f"The partial results in {path} belong to a different run ({what}). "
            "Run it the same way to resume, or delete that file to start again."
        )
    done: dict[int, dict[str, Any]] = {}
    for line in lines[1:]:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            done[int(entry["row"])] = dict(entry["values"])
        except (ValueError, KeyError, TypeError):
            continue  # the line being written when the run stopped
    if lines[-1].strip():
        # The file ended mid-line: finish it so the next line starts cleanly.
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n")
    return done
