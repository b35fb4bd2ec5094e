"""Files other programs hand to the Local API: where they are kept while a task reads them, and how.

A recording uploaded to ``/v1/audio/transcriptions`` (multipart) or a photo or recording given to
an MCP tool (base64) is written to a folder of its own for that one request, inside the upload
folder of whoever sent it: the owner's (Gradio's upload folder), or, on a server for other people,
the visitors' folder (:func:`desktop.share.controller.visitors_upload_folder`: inside their quota's
reach and removed when sharing stops). It is opened only through :mod:`desktop.files` by the task
(which checks what it really is), and removed as soon as the answer is ready. A visitor can never
name a path: only the owner's programs may give a file already on this computer.
Runs on the event loop (uploads) and on worker threads (base64).
"""

from __future__ import annotations

import base64
import binascii
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from desktop.errors import UserError

NO_PATHS = (
    "Send the file itself (its bytes as base64): a path names a file on the computer running "
    "Pipedesk, which visitors cannot use."
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._ -]+")
#: What a file given as base64 is called in the task's messages.
NAMES = {"audio": "recording", "image": "photo"}


def upload_root(visitors: bool) -> Path:
    """Where files handed in by the owner's programs, or by visitors', are kept while they are read."""
    if visitors:
        from desktop.share.controller import visitors_upload_folder

        return visitors_upload_folder()
    from gradio.utils import get_upload_folder

    return Path(get_upload_folder())


def safe_name(name: str, fallback: str) -> str:
    """A file name made only of plain characters (no folders), for the task's messages to name."""
    cleaned = _UNSAFE.sub("_", Path(name.replace("\\", "/")).name).strip(" .")[:100]
    return cleaned or fallback


class Handed:
    """The files of one request, in a folder of their own; :meth:`remove` deletes them all."""

    def __init__(self, visitors: bool) -> None:
        self.visitors = visitors
        self._folder: Path | None = None

    @property
    def folder(self) -> Path:
        """This request's folder, made when its first file arrives."""
        if self._folder is None:
            root = upload_root(self.visitors)
            root.mkdir(parents=True, exist_ok=True)
            self._folder = Path(tempfile.mkdtemp(prefix="api-", dir=root))
        return self._folder

    def path_for(self, name: str, fallback: str) -> Path:
        """A new file's path in this request's folder."""
        return self.folder / safe_name(name, fallback)

    def decoded(self, value: Any, what: str) -> str | None:
        """A file given as text to the input ``what`` ("audio", "image"): base64 bytes (a ``data:``
        URL too) written here, or, for the owner only, the path of a file on this computer. None when
        nothing was given."""
        if value is None or (isinstance(value, str) and not value.strip()):
            return None
        if not isinstance(value, str):
            raise UserError(f"{what} must be a text: the file's bytes as base64.")
        text = value.strip()
        path = not text.startswith("data:") and _looks_like_path(text)
        if path and not self.visitors and Path(text).expanduser().is_file():
            return str(Path(text).expanduser())
        try:
            data = base64.b64decode(
                text.partition(",")[2] if text.startswith("data:") else text, validate=True
            )
        except (binascii.Error, ValueError):
            if path and not self.visitors:
                return text  # a path after all: the task says the file could not be found
            raise UserError(
                NO_PATHS if path else f"{what} is not base64: send the file's bytes as base64."
            ) from None
        target = self.path_for(NAMES.get(what, what), what)
        target.write_bytes(data)
        return str(target)

    def remove(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)


def _looks_like_path(text: str) -> bool:
    if len(text) > 4096 or "\n" in text:
        return False
    return text.startswith(("/", "~", "./", "../", "\\\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", text))
