"""Audio files the tests make: the tiny Whisper's sounds in every container people use, and the
files it must refuse (silence, text, an empty file, a picture, an unknown codec, a damaged file).

Encoding goes through PyAV, the same library the app decodes with (FFmpeg inside its wheel).
Runs on the calling thread.
"""

from __future__ import annotations

import struct
import wave
from pathlib import Path

import numpy as np

from tests.support.tiny_media import SAMPLE_RATE, babble, tone, wav_bytes, write_wav

#: (file name, codec, sample rate) of the compressed copies of the tone.
COMPRESSED = (
    ("tone.flac", "flac", 16_000),
    ("tone.m4a", "aac", 16_000),
    ("tone.mp3", "libmp3lame", 16_000),
    ("tone.ogg", "libopus", 48_000),
    ("tone.webm", "libopus", 48_000),  # what browsers record
)


def encode(path: Path, samples: np.ndarray, codec: str, rate: int = SAMPLE_RATE) -> Path:
    """``samples`` (mono float at ``rate``) written with ``codec`` in the container ``path`` names."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        fmt = stream.codec_context.format.name  # what the encoder takes: s16, s32p, fltp...
        kinds = {"s16": (np.int16, 32767), "s32": (np.int32, 2**31 - 1)}
        dtype, scale = kinds.get(fmt[:3], (np.float32, 1))
        data = (samples * scale).astype(dtype)
        size = stream.codec_context.frame_size or 1024
        for start in range(0, len(data), size):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(data[None, start : start + size]), format=fmt, layout="mono"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def tone_at(rate: int, seconds: float = 2.0) -> np.ndarray:
    """The 440 Hz tone of ``tiny_media.tone`` sampled at ``rate``."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.4 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def stereo_wav(path: Path, rate: int = 44_100, seconds: float = 2.0) -> Path:
    """The tone as a CD-style WAV: 44.1 kHz, two channels."""
    left = (tone_at(rate, seconds) * 32767).astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(np.stack([left, left], axis=1).tobytes())
    return path


def damaged_flac(path: Path, seconds: float = 120.0) -> Path:
    """A FLAC recording whose second half is overwritten with noise bytes (a broken download)."""
    encode(path, tone(seconds), "flac")
    data = bytearray(path.read_bytes())
    half = len(data) // 2
    data[half:] = np.random.default_rng(0).integers(0, 256, len(data) - half, dtype=np.uint8).tobytes()
    path.write_bytes(bytes(data))
    return path


def odd_codec_wav(path: Path) -> Path:
    """A WAV file whose header names a sound format (codec) no decoder knows."""
    data = bytearray(wav_bytes(tone(1.0)))
    data[20:22] = struct.pack("<H", 0x1234)  # the format tag of the "fmt " chunk
    path.write_bytes(bytes(data))
    return path


def make_recordings(folder: Path) -> dict[str, Path]:
    """Every file the transcription tests use, by name."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    files = {
        "tone.wav": write_wav(folder / "tone.wav", tone(2.0)),
        "babble.wav": write_wav(folder / "babble.wav", babble(2.5, seed=11)),  # not a training sample
        "tone-44k-stereo.wav": stereo_wav(folder / "tone-44k-stereo.wav"),
        "silence.wav": write_wav(folder / "silence.wav", np.zeros(2 * SAMPLE_RATE, dtype=np.float32)),
        "odd-codec.wav": odd_codec_wav(folder / "odd-codec.wav"),
        "damaged.flac": damaged_flac(folder / "damaged.flac"),
    }
    for name, codec, rate in COMPRESSED:
        files[name] = encode(folder / name, tone_at(rate), codec, rate)
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.wav").write_text("Meeting notes, not a recording.\n" * 40, encoding="utf-8")
    Image.new("RGB", (32, 32), (200, 30, 30)).save(folder / "photo.png")
    files.update({name: folder / name for name in ("empty.wav", "notes.wav", "photo.png")})
    return files
