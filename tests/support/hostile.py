"""A corpus of hostile files: what an attacker (a LAN visitor, a user of a public server) or a
damaged disk hands to Pipedesk, each one made here in well under a second.

``build(folder)`` writes every file and returns them as :class:`Hostile` entries; ``secret``
(outside the corpus) is "the owner's own recording" that playlists and concat lists point to: the
tiny Whisper hears it as " hello world", so a transcript that says so is a leak. The corpus covers
issue #15 item by item (playlists, concat lists, audio bombs, a PostScript file named .png, a
36-megapixel photo, an XLSX shared-strings bomb) plus truncated, zero-byte, wrong-extension,
nested-archive and huge-declared-size variants of every kind. Runs on the calling thread.
"""

from __future__ import annotations

import io
import struct
import zipfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.support.recordings import encode
from tests.support.tiny_media import babble, square, tone, wav_bytes, write_wav

#: What the tiny Whisper hears in the secret recording.
SECRET_WORDS = "hello world"
#: The 36-megapixel photo: a square one, with the blue square the tiny YOLOS finds at its middle.
BIG_SIDE = 6000
BIG_SQUARE = (1500, 1500, 4500, 4500)


@dataclass(frozen=True)
class Hostile:
    """One file of the corpus: its path, the kind of file it pretends to be, and what it tries."""

    path: Path
    kind: str  # "audio", "image" or "table"
    attack: str

    @property
    def name(self) -> str:
        return self.path.name


def build(folder: Path) -> tuple[list[Hostile], Path]:
    """Write the corpus under ``folder`` (``folder/audio``, ``folder/images``, ``folder/tables``)
    and the owner's secret recording beside it; (the corpus, the secret's path)."""
    secret = write_wav(_mkdir(folder / "owners-music") / "memo.wav", babble(2.5, seed=11))
    audio, images, tables = (_mkdir(folder / kind) for kind in ("audio", "images", "tables"))
    corpus = [
        *_audio(audio, secret),
        *_images(images),
        *_tables(tables),
    ]
    return corpus, secret


def _adder(folder: Path, kind: str, files: list[Hostile]) -> Callable[[str, bytes | str, str], None]:
    """``add(name, data, attack)``: write a file of ``kind`` in ``folder`` and list it in ``files``."""

    def add(name: str, data: bytes | str, attack: str) -> None:
        path = folder / name
        path.write_bytes(data.encode() if isinstance(data, str) else data)
        files.append(Hostile(path, kind, attack))

    return add


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- recordings ----------------------------------------------------------------------------


def _playlist(target: str) -> str:
    return f"#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:2.5,\n{target}\n#EXT-X-ENDLIST\n"


def _audio(folder: Path, secret: Path) -> list[Hostile]:
    files: list[Hostile] = []
    add = _adder(folder, "audio", files)

    add("playlist.m3u8", _playlist(str(secret)), "an HLS playlist naming the owner's recording")
    add("playlist-url.m3u8", _playlist(secret.as_uri()), "a playlist naming it as a file:// URL")
    add("playlist.wav", _playlist(str(secret)), "the playlist named .wav")
    add("concat.wav", f"ffconcat version 1.0\nfile '{secret}'\n", "an FFmpeg concat list named .wav")
    add(
        "one-hertz.wav",
        _wav_header(rate=1, data=np.full(5000, 1000, "<i2").tobytes()),
        "10 KB declaring 1 Hz: hours",
    )
    add(
        "huge-header.wav",
        _wav_header(rate=16_000, data=b"\x01\x00" * 512, declared=0xFFFFFF00),
        "4 GB declared, 1 KB there",
    )
    add("empty.wav", b"", "zero bytes")
    add("truncated.wav", wav_bytes(tone(2.0))[:300], "a WAV cut after its header")
    add("photo.wav", _png_bytes(), "a photo named .wav")
    add("notes.mp3", "Minutes of the meeting.\n" * 50, "text named .mp3")
    long_silence = encode(folder / "long-silence.flac", np.zeros(40 * 60 * 8000, np.float32), "flac", 8000)
    files.append(Hostile(long_silence, "audio", "40 minutes of silence in a few KB of FLAC"))
    files.append(Hostile(_undeclared(long_silence, folder / "undeclared-silence.flac"), "audio",
                         "the same FLAC with its length erased: decoded until a limit stops it"))  # fmt: skip
    return files


def _wav_header(rate: int, data: bytes, declared: int | None = None) -> bytes:
    """A 16-bit mono WAV whose header says ``rate`` and ``declared`` data bytes (default: the truth)."""
    size = len(data) if declared is None else declared
    fmt = struct.pack("<4sIHHIIHH", b"fmt ", 16, 1, 1, rate, rate * 2, 2, 16)
    head = b"RIFF" + struct.pack("<I", (36 + size) & 0xFFFFFFFF) + b"WAVE" + fmt
    return head + b"data" + struct.pack("<I", size) + data


def _undeclared(flac: Path, target: Path) -> Path:
    """``flac`` with the total sample count of its STREAMINFO set to 0 ("unknown")."""
    data = bytearray(flac.read_bytes())
    assert data[:4] == b"fLaC"
    start = 8 + 10  # "fLaC", the block header; then 10 bytes before rate/channels/bits/total
    (packed,) = struct.unpack(">Q", data[start : start + 8])
    data[start : start + 8] = struct.pack(">Q", packed & ~((1 << 36) - 1))
    target.write_bytes(bytes(data))
    return target


# --- photos --------------------------------------------------------------------------------


def _png_bytes(size: tuple[int, int] = (32, 32)) -> bytes:
    out = io.BytesIO()
    square(size, (8, 8, 24, 24)).save(out, "PNG")
    return out.getvalue()


def _png_declaring(width: int, height: int) -> bytes:
    """A PNG whose header (with a valid checksum) declares ``width`` x ``height``, and no pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + chunk(b"IEND", b"")
    )


def _images(folder: Path) -> list[Hostile]:
    files: list[Hostile] = []
    add = _adder(folder, "image", files)

    postscript = "%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\nnewpath 0 0 moveto 100 100 lineto stroke\nshowpage\n%%EOF\n"
    add("postscript.png", postscript, "PostScript named .png (Ghostscript where installed)")
    add("empty.png", b"", "zero bytes")
    add("truncated.png", _png_bytes((400, 400))[:200], "a PNG cut short")
    add("huge-declared.png", _png_declaring(100_000, 100_000), "a header declaring 10 gigapixels")
    add(
        "vector.png",
        '<svg xmlns="http://www.w3.org/2000/svg"><image href="file:///etc/passwd"/></svg>',
        "SVG naming a file",
    )
    add("recording.png", wav_bytes(tone(1.0)), "a recording named .png")
    add("archive.jpg", _zip({"photo.png": _png_bytes()}), "a ZIP named .jpg")
    big = folder / "photo-36mp.jpg"
    square((BIG_SIDE, BIG_SIDE), BIG_SQUARE).save(big, quality=80)
    files.append(Hostile(big, "image", "a 36-megapixel photo: decoded whole it costs hundreds of MB"))
    return files


# --- tables --------------------------------------------------------------------------------

_MAIN = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PACKAGE = "http://schemas.openxmlformats.org/package/2006/relationships"
_OFFICE = "application/vnd.openxmlformats-officedocument.spreadsheetml"


def workbook(sheet_xml: str, shared: str | None = None, dimension: str | None = None) -> bytes:
    """A minimal .xlsx written part by part (its sheet and shared strings exactly as given)."""
    parts = {
        "[Content_Types].xml": (
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            f'<Override PartName="/xl/workbook.xml" ContentType="{_OFFICE}.sheet.main+xml"/>'
            f'<Override PartName="/xl/sharedStrings.xml" ContentType="{_OFFICE}.sharedStrings+xml"/>'
            f'<Override PartName="/xl/worksheets/sheet1.xml" ContentType="{_OFFICE}.worksheet+xml"/></Types>'
        ),
        "_rels/.rels": (
            f'<Relationships xmlns="{_PACKAGE}"><Relationship Id="rId1" '
            f'Type="{_REL}/officeDocument" Target="xl/workbook.xml"/></Relationships>'
        ),
        "xl/workbook.xml": (
            f'<workbook xmlns="{_MAIN}" xmlns:r="{_REL}"><sheets>'
            '<sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
        ),
        "xl/_rels/workbook.xml.rels": (
            f'<Relationships xmlns="{_PACKAGE}"><Relationship Id="rId1" Type="{_REL}/worksheet" '
            f'Target="worksheets/sheet1.xml"/><Relationship Id="rId2" Type="{_REL}/sharedStrings" '
            'Target="sharedStrings.xml"/></Relationships>'
        ),
        "xl/worksheets/sheet1.xml": (
            f'<worksheet xmlns="{_MAIN}">'
            + (f'<dimension ref="{dimension}"/>' if dimension else "")
            + f"<sheetData>{sheet_xml}</sheetData></worksheet>"
        ),
    }
    if shared is not None:
        parts["xl/sharedStrings.xml"] = f'<sst xmlns="{_MAIN}">{shared}</sst>'
    return _zip(parts)


def _zip(parts: dict[str, str | bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name, data in parts.items():
            archive.writestr(name, data)
    return out.getvalue()


def _zip_declaring(name: str, unpacked: int) -> bytes:
    """A ZIP whose one part says it unpacks to ``unpacked`` bytes (a zip bomb's header)."""
    data = bytearray(_zip({name: b"<x/>"}))
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        data[at + offset : at + offset + 4] = struct.pack("<I", unpacked)
    return bytes(data)


def _tables(folder: Path) -> list[Hostile]:
    files: list[Hostile] = []
    add = _adder(folder, "table", files)

    two_rows = '<row r="1"><c r="A1" t="s"><v>0</v></c></row><row r="2"><c r="A2" t="s"><v>1</v></c></row>'
    add(
        "shared-strings.xlsx",
        workbook(two_rows, "<si><t>a</t></si>" * 1_200_000),
        "1.2 million shared strings for 2 cells",
    )
    add(
        "dimension.xlsx",
        workbook(two_rows, "<si><t>text</t></si><si><t>hello</t></si>", "A1:XFD1048576"),
        "a sheet declaring 17 billion cells",
    )
    add(
        "nested.xlsx",
        _zip({"inner.zip": _zip({"xl/workbook.xml": "<workbook/>"})}),
        "a ZIP inside a ZIP, named .xlsx",
    )
    add(
        "zip-bomb.xlsx",
        _zip_declaring("xl/worksheets/sheet1.xml", 0xFFFFFFF0),
        "a part declaring 4 GB unpacked",
    )
    add("commas.csv", "id,text\n1,hello\n" + "," * 1_000_000 + "\n", "a row of a million commas")
    add("binary.csv", bytes(range(256)) * 400, "binary bytes named .csv")
    add("empty.csv", b"", "zero bytes")
    add("spreadsheet.xlsx", "text\nhello\n", "a CSV named .xlsx")
    add("deep.jsonl", "[" * 100_000 + "]" * 100_000 + "\n", "a JSON line nested 100,000 deep")
    add("quote.csv", 'text\n"never closed\n' + "more text\n" * 1000, "an unclosed quote")
    return files
