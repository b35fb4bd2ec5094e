"""Recordings as people give them (a path, an upload, a recording from the microphone): decoded to
what speech models take, 16 kHz mono float32, or refused in words.

Decoding goes through PyAV (FFmpeg's libraries inside the wheel: WAV, MP3, M4A/AAC, FLAC, OGG
and the browsers' WebM/Opus, with nothing to install on Windows, macOS or Linux). What FFmpeg may
do with a file is fenced in before it reads a byte:

* only the demuxers of real audio containers (:data:`DEMUXERS`) may open it: an HLS playlist, a
  concat list, an image sequence or any other format that names *other* files is refused, so a
  file handed in can never make FFmpeg read something else on this computer;
* only the ``file`` protocol: nothing is fetched from the network;
* the declared length and sample rate are checked before decoding; decoding then fills a buffer
  that never grows past the limit (:attr:`desktop.files.Limits.audio_seconds`, shorter for
  visitors) and stops there with a sentence. A 10 KB file that declares hours costs at most that.

Pure Python with numpy and PyAV, imported when a file is opened; runs on the caller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.errors import UserError
from desktop.files import OWNER, Limits, handed_in
from desktop.fmt import duration

SAMPLE_RATE = 16_000
MAX_AUDIO_BYTES = 1024 * 1024 * 1024
#: Quieter than this everywhere (RMS, full scale 1.0: about -70 dBFS) is silence.
SILENCE_RMS = 3e-4
AUDIO_EXTENSIONS = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm", ".mp4", ".wma"}
#: FFmpeg demuxers allowed to open a recording (``mov`` is the MP4/M4A family, ``matroska`` WebM).
DEMUXERS = ("wav", "mp3", "mov", "flac", "ogg", "matroska", "asf", "aac")
#: Sample rates of real recordings (telephone to studio); a file declaring 1 Hz is a trap: each
#: of its samples would be resampled into 16,000.
MIN_RATE, MAX_RATE = 4_000, 384_000
READABLE = "WAV, MP3, M4A, FLAC, OGG, WebM"
_OPEN_OPTIONS = {"format_whitelist": ",".join(DEMUXERS), "protocol_whitelist": "file"}


@dataclass(frozen=True)
class Audio:
    """A decoded recording: samples at :data:`SAMPLE_RATE`, mono, float32 in [-1, 1], and what a
    person should know about it (``notes``: part of a damaged file could not be read)."""

    samples: Any  # numpy.ndarray
    name: str
    notes: tuple[str, ...] = ()

    @property
    def seconds(self) -> float:
        return len(self.samples) / SAMPLE_RATE


def load_audio(source: Any, limits: Limits = OWNER) -> Audio:
    """Decode ``source`` (a path, or an upload as Gradio passes it) or raise UserError saying why not:
    nothing given, not a recording of an allowed format, a codec that cannot be read, empty, silent,
    or longer than ``limits.audio_seconds``."""
    file = handed_in(source, "a recording", MAX_AUDIO_BYTES)
    samples, declared = _decode(file, limits.audio_seconds)
    if not len(samples):
        raise UserError(f"{file.name} holds no sound: the recording is empty.")
    if _rms(samples) < SILENCE_RMS:
        raise UserError(f"{file.name} is silent: there is nothing to transcribe.")
    seconds = len(samples) / SAMPLE_RATE
    notes: tuple[str, ...] = ()
    if declared and declared - seconds > max(1.0, 0.05 * declared):
        notes = (
            f"Only {duration(seconds)} of the {duration(declared)} in {file.name} could be decoded: "
            "the rest of the file is damaged.",
        )
    return Audio(samples, file.name, notes)


def not_audio(name: str) -> UserError:
    """The refusal of a file named ``name`` that is no recording Pipedesk reads (the CLI's, the tab's
    and the API's sentence)."""
    return UserError(f"{name} is not an audio file Pipedesk can read ({READABLE}).")


def _too_long(file: Path, max_seconds: float) -> UserError:
    return UserError(
        f"{file.name} is longer than {_hours(max_seconds)}, the most Pipedesk transcribes at once: "
        "split it into shorter recordings."
    )


def _decode(file: Path, max_seconds: float) -> tuple[Any, float | None]:
    """The samples (refused once past ``max_seconds``) and the length the file declares."""
    import av

    try:
        container = av.open(str(file), options=dict(_OPEN_OPTIONS))
    except (av.error.FFmpegError, ValueError, OSError):
        raise not_audio(file.name) from None
    with container:
        if container.format.name.split(",")[0] not in DEMUXERS:  # what the allow-list let through
            raise not_audio(file.name)
        streams = container.streams.audio
        if not streams:
            raise UserError(f"{file.name} has no sound in it (no audio stream).")
        stream = streams[0]
        if stream.codec_context is None:
            raise UserError(
                f"{file.name} holds sound in a format (codec) Pipedesk cannot decode: convert it to WAV, "
                "MP3 or FLAC first."
            )
        rate = stream.codec_context.sample_rate or 0
        if not MIN_RATE <= rate <= MAX_RATE:
            raise UserError(
                f"{file.name} declares a sample rate of {rate:,} Hz, which no real recording has "
                f"({MIN_RATE:,} to {MAX_RATE:,} Hz): the file is damaged or was made to harm."
            )
        declared = _declared_seconds(container, stream)
        if declared is not None and declared > max_seconds + 1.0:
            raise _too_long(file, max_seconds)
        samples = _BoundedBuffer(int(max_seconds * SAMPLE_RATE), file, max_seconds)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    samples.append(out.to_ndarray().reshape(-1))
            for out in resampler.resample(None):
                samples.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise UserError(
                f"{file.name} could not be decoded ({_reason(exc)}): the file may be damaged."
            ) from None
    return samples.view(), declared


class _BoundedBuffer:
    """float32 samples appended chunk by chunk into one array that grows by doubling, never past
    ``limit`` samples: the next chunk that would pass it is refused (no list of parts, no copy at
    the end)."""

    def __init__(self, limit: int, file: Path, max_seconds: float) -> None:
        import numpy as np

        self.limit, self.file, self.max_seconds = limit, file, max_seconds
        self.data = np.empty(min(limit, 60 * SAMPLE_RATE), dtype=np.float32)
        self.size = 0

    def append(self, chunk: Any) -> None:
        import numpy as np

        end = self.size + len(chunk)
        if end > self.limit:
            raise _too_long(self.file, self.max_seconds)
        if end > len(self.data):
            grown = np.empty(min(self.limit, max(end, 2 * len(self.data))), dtype=np.float32)
            grown[: self.size] = self.data[: self.size]
            self.data = grown
        self.data[self.size : end] = chunk
        self.size = end

    def view(self) -> Any:
        return self.data[: self.size]


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """How long the file says it is (None when it does not say, as live recordings often do)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _rms(samples: Any, chunk: int = 1 << 20) -> float:
    """Root mean square, a million samples at a time (no float64 copy of a whole recording)."""
    import numpy as np

    total = 0.0
    for start in range(0, len(samples), chunk):
        part = samples[start : start + chunk].astype(np.float64)
        total += float(np.dot(part, part))
    return float(np.sqrt(total / max(1, len(samples))))


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


def _reason(exc: Any) -> str:
    """FFmpeg's words for what went wrong, without its error numbers and function names."""
    text = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return str(text)[:120]
