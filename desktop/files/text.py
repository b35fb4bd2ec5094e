"""Telling a text file from a binary one, and cutting its bytes into decoded lines, lazily.

Pure functions on bytes already read, no I/O; they run on whichever thread reads the
file (the CLI's main thread, a Gradio worker for the Batch tab). ``desktop.files.reader``
calls :func:`open_text` for every text format (CSV, TSV, JSONL, TXT), so the "is this
text at all?" rule lives here only.

Encodings: UTF-8 (with or without a BOM), UTF-16 when the file starts with its BOM;
a line that is not valid UTF-8 is read as Windows-1252 (latin-1 for the few bytes
cp1252 leaves undefined) and flagged, so the reader can name the rows affected.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass

from desktop.errors import UserError

#: How much of a file is looked at to decide whether it is text.
SAMPLE_BYTES = 64 * 1024
#: A text file's sample may hold at most this share of odd characters: control characters
#: other than tab, line/page breaks and escape, and bytes no encoding Pipedesk reads defines.
#: Random binary data has about 12% of them; real text next to none.
MAX_ODD_SHARE = 0.05
#: The starts of common binary files, with what a person would call them.
SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"\x28\xb5\x2f\xfd", "a Zstandard archive"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style Office document (.xls or .doc)"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\x7fELF", "a program (ELF)"),
    (b"\xcf\xfa\xed\xfe", "a program (Mach-O)"),
    (b"\xca\xfe\xba\xbe", "a program (Mach-O)"),
)
# Control characters that do not belong in text, DEL, and (as surrogate escapes of a
# UTF-8 decode) the five bytes cp1252 leaves undefined.
_ODD = re.compile("[\x00-\x08\x0e-\x1a\x1c-\x1f\x7f\udc81\udc8d\udc8f\udc90\udc9d]")
# Lines end at \n, \r or \r\n only (as bytes.splitlines cuts them); the end is kept.
_LINE_BYTES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_LINE_TEXT = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")
_REST_OF_LINE_BYTES = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)?")
_REST_OF_LINE_TEXT = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)?")


@dataclass(frozen=True)
class TextFile:
    """A file's content, known to be text, without blank lines at its end.

    ``content`` is bytes (UTF-8, with a per-line cp1252 fallback) or, for UTF-16 files,
    the decoded str.
    """

    content: bytes | str

    def lines(self) -> Iterator[tuple[str, bool]]:
        """Each line (its end kept) and whether it had to be read as Windows-1252; lazily."""
        if isinstance(self.content, str):
            for match in _LINE_TEXT.finditer(self.content):
                yield match.group(), False
            return
        for match in _LINE_BYTES.finditer(self.content):
            raw = match.group()
            try:
                yield raw.decode("utf-8"), False
            except UnicodeDecodeError:
                try:
                    yield raw.decode("cp1252"), True
                except UnicodeDecodeError:
                    yield raw.decode("latin-1"), True

    def sample(self, chars: int = SAMPLE_BYTES) -> str:
        """The first ``chars`` characters or so, whole lines (for sniffing a CSV delimiter)."""
        parts, size = [], 0
        for line, _ in self.lines():
            parts.append(line)
            size += len(line)
            if size >= chars:
                break
        return "".join(parts)[:chars]


def open_text(data: bytes, name: str) -> TextFile:
    """``data`` as a TextFile, or UserError: empty, not text (binary), or broken UTF-16."""
    content: bytes | str
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            content = data.decode("utf-16")
        except UnicodeDecodeError:
            raise UserError(f"{name} starts like UTF-16 text but is not valid UTF-16.") from None
        sample, has_nul = content[: SAMPLE_BYTES // 2], "\x00" in content
    else:
        for signature, kind in SIGNATURES:
            if data.startswith(signature):
                if kind == "a ZIP archive" and b"xl/workbook" in data:
                    raise UserError(
                        f"{name} is an Excel workbook saved under the wrong name: rename it to .xlsx "
                        "(or save it as CSV from Excel) and try again."
                    )
                raise _not_text(name, f"it is {kind}")
        content = data.removeprefix(codecs.BOM_UTF8)
        sample = content[:SAMPLE_BYTES].decode("utf-8", errors="surrogateescape")
        has_nul = b"\x00" in content
    if has_nul:
        raise _not_text(name, "it contains NUL bytes")
    if len(_ODD.findall(sample)) > MAX_ODD_SHARE * len(sample):
        raise _not_text(name, "it is full of control characters")
    if not content[:SAMPLE_BYTES].strip() and not content.strip():  # no copy of a whole file
        raise UserError(f"{name} is empty: there are no rows to analyse.")
    return TextFile(_without_blank_tail(content))


def _not_text(name: str, why: str) -> UserError:
    return UserError(
        f"{name} is not a text file ({why}). Pipedesk reads .csv, .tsv, .jsonl and .txt files as "
        "text: choose the right file, or save it again as CSV UTF-8 from the program that made it."
    )


def _without_blank_tail(content: bytes | str) -> bytes | str:
    """``content`` cut after the last line holding more than spaces, so blank lines at
    its end are never read (a file of a hundred million line breaks costs nothing).
    Only the tail is looked at, a block at a time: no copy of the whole file is made."""
    end = len(content)
    while end:
        block = content[max(0, end - SAMPLE_BYTES) : end]
        kept = len(block.rstrip())
        end -= len(block) - kept
        if kept:
            break
    rest_of_line = _REST_OF_LINE_TEXT if isinstance(content, str) else _REST_OF_LINE_BYTES
    match = rest_of_line.match(content, end)  # type: ignore[arg-type]
    return content[: match.end()] if match else content
