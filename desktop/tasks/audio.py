"""Audio as people give it (a path, an upload, a recording from the microphone): decoded to what
speech models take, 16 kHz mono float32, or refused in words.

Decoding goes through PyAV (FFmpeg's libraries inside the wheel: WAV, MP3, M4A/AAC, FLAC, OGG
and the browsers' WebM/Opus, with nothing to install on Windows, macOS or Linux). It streams:
a recording longer than the limit is refused as soon as the limit is passed, never decoded whole.
Pure Python with numpy and PyAV, imported when a check runs; runs on the caller's thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from desktop.errors import UserError
from desktop.fmt import duration
from desktop.tasks.images import upload_path

SAMPLE_RATE = 16_000
#: The longest recording accepted (a long meeting); longer ones are refused, not cut.
MAX_AUDIO_SECONDS = 3 * 60 * 60
MAX_AUDIO_BYTES = 1024 * 1024 * 1024
#: Quieter than this everywhere (RMS, full scale 1.0: about -70 dBFS) is silence.
SILENCE_RMS = 3e-4
AUDIO_EXTENSIONS = {".wav", ".mp3", ".m4a", ".aac", ".flac", ".ogg", ".oga", ".opus", ".webm", ".mp4", ".wma"}


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


def load_audio(source: Any, max_seconds: float | None = None) -> Audio:
    """Decode ``source`` (a path, or an upload as Gradio passes it) or raise UserError saying why not:
    nothing given, not audio, a codec that cannot be read, empty, silent, or longer than
    ``max_seconds`` (default :data:`MAX_AUDIO_SECONDS`)."""
    path = upload_path(source)
    if path is None:
        raise UserError("Please choose a recording: none was given.")
    file = Path(path)
    if not file.is_file():
        raise UserError(f"The recording {file.name} could not be found.")
    size = file.stat().st_size
    if size == 0:
        raise UserError(f"{file.name} is empty (0 bytes): there is no recording in it.")
    if size > MAX_AUDIO_BYTES:
        raise UserError(f"{file.name} is larger than {MAX_AUDIO_BYTES // 1024**3} GB: split it first.")
    samples, declared = _decode(file, MAX_AUDIO_SECONDS if max_seconds is None else max_seconds)
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


def _decode(file: Path, max_seconds: float) -> tuple[Any, float | None]:
    """The samples (streamed: refused once past ``max_seconds``) and the length the file declares."""
    import av
    import numpy as np

    try:
        container = av.open(str(file))
    except (av.error.InvalidDataError, av.error.FFmpegError, ValueError, OSError):
        raise UserError(
            f"{file.name} is not an audio file Pipedesk can read (WAV, MP3, M4A, FLAC, OGG, WebM)."
        ) from None
    with container:
        streams = container.streams.audio
        if not streams:
            raise UserError(f"{file.name} has no sound in it (no audio stream).")
        stream = streams[0]
        if stream.codec_context is None:
            raise UserError(
                f"{file.name} holds sound in a format (codec) Pipedesk cannot decode: convert it to WAV, "
                "MP3 or FLAC first."
            )
        declared = _declared_seconds(container, stream)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        parts: list[Any] = []
        total = 0
        limit = int(max_seconds * SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    chunk = out.to_ndarray().reshape(-1)
                    parts.append(chunk)
                    total += len(chunk)
                if total > limit:
                    raise UserError(
                        f"{file.name} is longer than {_hours(max_seconds)}, the most Pipedesk transcribes "
                        "at once: split it into shorter recordings."
                    )
            for out in resampler.resample(None):
                parts.append(out.to_ndarray().reshape(-1))
        except av.error.FFmpegError as exc:
            raise UserError(
                f"{file.name} could not be decoded ({_reason(exc)}): the file may be damaged."
            ) from None
    samples = np.concatenate(parts).astype(np.float32) if parts else np.zeros(0, dtype=np.float32)
    return samples, declared


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """How long the file says it is (None when it does not say, as live recordings often do)."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # AV_TIME_BASE
    return None


def _rms(samples: Any) -> float:
    import numpy as np

    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def _hours(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g} hours"
    return f"{seconds / 60:g} minutes" if seconds >= 60 else f"{seconds:g} seconds"


def _reason(exc: Any) -> str:
    """FFmpeg's words for what went wrong, without its error numbers and function names."""
    text = getattr(exc, "strerror", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return str(text)[:120]
