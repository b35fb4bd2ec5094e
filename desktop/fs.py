"""The one way Pipedesk writes a file it cares about: atomically (a temporary file next to it, then
a rename), so a crash never leaves half a file under the name asked for; owner-only (0600) for
files that hold a secret. Safe from any thread (each writer has its own temporary name).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")


@contextmanager
def atomic_path(path: Path, private: bool = False) -> Iterator[Path]:
    """A temporary path to write to; it replaces ``path`` when the block ends without an error and is
    removed otherwise. ``private`` makes the file readable and writable by this user only."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        if private:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
            os.chmod(tmp, 0o600)  # a leftover temporary file keeps its old mode through os.open
        yield tmp
        if private:
            os.chmod(tmp, 0o600)  # writers that recreate the file (openpyxl) must not widen it
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str, private: bool = False) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see the module docstring)."""
    with (
        atomic_path(path, private) as tmp,
        tmp.open("r+" if private else "w", encoding="utf-8", newline="") as out,
    ):
        out.write(text)
        out.truncate()


def write_with(path: Path, writer: Callable[[Path], None], private: bool = False) -> None:
    """Let ``writer(tmp)`` produce the file (a CSV or XLSX writer...), then put it in place atomically."""
    with atomic_path(path, private) as tmp:
        writer(tmp)
