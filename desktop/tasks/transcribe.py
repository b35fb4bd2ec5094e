"""Transcribe: speech to text with Whisper, in 30-second parts, optionally with timestamps.

A recording is decoded to 16 kHz mono (:mod:`desktop.files.audio`), split into the 30-second
windows Whisper reads, and the windows go through the model in batches; the parts are joined and
every segment's times are shifted to where its window starts, so nothing is cut. The language is
detected unless one is chosen. Segments export as plain text, SubRip (:func:`srt`) or WebVTT
(:func:`vtt`) subtitles.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from desktop.errors import Stopped, UserError
from desktop.files import OWNER, Limits
from desktop.files.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, load_audio
from desktop.models.ref import ModelRef
from desktop.tasks.generate import stop_when
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec

WINDOW_SECONDS = 30
LANGUAGES = (
    ("Detect automatically", "auto"),
    ("English", "en"),
    ("French", "fr"),
    ("German", "de"),
    ("Spanish", "es"),
    ("Italian", "it"),
    ("Portuguese", "pt"),
    ("Dutch", "nl"),
    ("Polish", "pl"),
    ("Swedish", "sv"),
    ("Turkish", "tr"),
    ("Russian", "ru"),
    ("Ukrainian", "uk"),
    ("Arabic", "ar"),
    ("Hindi", "hi"),
    ("Chinese", "zh"),
    ("Japanese", "ja"),
    ("Korean", "ko"),
)
OPTIONS = (
    Option(
        "language",
        "auto",
        "The language spoken; auto detects it.",
        str,
        ("dropdown", "Language", "Detected automatically unless you choose one"),
        choices=LANGUAGES,
    ),
    Option(
        "timestamps",
        False,
        "Give each segment its start and end time.",
        bool,
        ("checkbox", "Timestamps", "Times for each segment (and subtitles to download)"),
    ),
)
COLUMNS = ["start", "end", "text"]


def clock(seconds: float, separator: str = ",") -> str:
    """``75.5`` -> ``00:01:15,500`` (SubRip's clock)."""
    millis = max(0, round(seconds * 1000))
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def srt(segments: list[dict[str, Any]]) -> str:
    """The segments as SubRip subtitles (``.srt``)."""
    blocks = [
        f"{number}\n{clock(s['start'])} --> {clock(s['end'])}\n{s['text'].strip()}\n"
        for number, s in enumerate((s for s in segments if s["text"].strip()), start=1)
    ]
    return "\n".join(blocks)


def vtt(segments: list[dict[str, Any]]) -> str:
    """The segments as WebVTT subtitles (``.vtt``: what browsers' ``<track>`` reads)."""
    cues = [
        f"{clock(s['start'], '.')} --> {clock(s['end'], '.')}\n{s['text'].strip()}\n"
        for s in segments
        if s["text"].strip()
    ]
    return "\n".join(["WEBVTT\n", *cues])


def plain_text(result_data: dict[str, Any]) -> str:
    """What the TXT export holds: the transcript, one segment per line when there are times."""
    segments = result_data.get("segments") or []
    if result_data.get("timestamps") and segments:
        return "\n".join(f"[{clock(s['start'], '.')}] {s['text'].strip()}" for s in segments) + "\n"
    return result_data["text"] + "\n"


class Transcribe(TaskSpec):
    id = "transcribe"
    title = "Transcribe"
    description = "Turns speech into text (Whisper). Long recordings are transcribed part by part, with times if you ask."
    kind = "automatic-speech-recognition"
    default_model = ModelRef("openai/whisper-base", "main", "Whisper base (multilingual)", 290)
    alternatives = (
        ModelRef("openai/whisper-tiny", "main", "Whisper tiny (multilingual, fastest)", 151),
        ModelRef("openai/whisper-small", "main", "Whisper small (multilingual, more accurate)", 967),
    )
    inputs = ("audio",)
    options = OPTIONS
    examples = ()
    file_input = "audio"
    folder_kind = "audio"
    columns = ("transcript",)

    def cli_inputs(self, value: str) -> dict[str, Any]:
        return {"audio": value}

    def validate(self, inputs: dict[str, Any], limits: Limits = OWNER) -> dict[str, Any]:
        return {"audio": load_audio(inputs.get("audio"), limits)}

    def preprocess(self, model: ModelView, inputs: dict[str, Any], options: dict[str, Any]) -> Prepared:
        language = options["language"]
        known = _languages(model)
        if not known and language not in ("auto", "en"):
            raise UserError(f"{model.display} understands English only: choose English or auto.")
        if known and language != "auto" and language not in known.values():
            raise UserError(
                f"{model.display} does not know the language {language!r}: choose auto or another."
            )
        audio = inputs["audio"]
        size = WINDOW_SECONDS * SAMPLE_RATE
        pieces = [
            Piece(0, part, audio=audio.samples[start : start + size])
            for part, start in enumerate(range(0, len(audio.samples), size))
        ]
        return Prepared(
            pieces, context={"seconds": audio.seconds, "name": audio.name}, notes=list(audio.notes)
        )

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        features = model.features([p.audio for p in pieces], sampling_rate=SAMPLE_RATE, return_tensors="pt")
        net = model.model
        # Encoded once: language detection and transcription both read it.
        encoded = net.get_encoder()(features.input_features.to(net.device, dtype=net.dtype))
        known = _languages(model)
        kwargs: dict[str, Any] = {"return_timestamps": options["timestamps"]}
        if not known:  # an English-only model takes no language and no task
            languages = ["en"] * len(pieces)
        elif options["language"] == "auto":
            languages = [known[int(i)] for i in net.detect_language(encoder_outputs=encoded)]
            kwargs.update(task="transcribe", language=languages)
        else:
            languages = [options["language"]] * len(pieces)
            kwargs.update(task="transcribe", language=languages)
        out = net.generate(encoder_outputs=encoded, stopping_criteria=stop_when(stop), **kwargs)
        if stop is not None and stop():
            raise Stopped("Stopped: nothing was kept of the unfinished run.")
        sequences = getattr(out, "sequences", out)
        return [
            {**model.decode_offsets(row), "language": language}
            for row, language in zip(sequences, languages, strict=True)
        ]

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        segments: list[dict[str, Any]] = []
        seconds = prepared.context["seconds"]
        for piece, out in zip(prepared.pieces, outputs, strict=True):
            offset = piece.part * WINDOW_SECONDS
            window_end = min(float(seconds), float(offset + WINDOW_SECONDS))
            parts = out.get("offsets") if options["timestamps"] else None
            if not parts:
                parts = [{"text": out["text"], "timestamp": (0.0, window_end - offset)}]
            for part in parts:
                start, end = part["timestamp"]
                end = window_end - offset if end is None else end
                segments.append(
                    {
                        "start": round(offset + float(start), 2),
                        "end": round(min(window_end, offset + float(end)), 2),
                        "text": part["text"].strip(),
                    }
                )
        text = " ".join(s["text"] for s in segments if s["text"]).strip()
        notes = [f"The recording ({seconds:,.0f} s) was transcribed in {len(prepared.pieces)} parts."]
        data = {
            "text": text,
            "segments": segments,
            "language": Counter(out["language"] for out in outputs).most_common(1)[0][0],
            "timestamps": options["timestamps"],
            "seconds": round(seconds, 2),
        }
        table = {"headers": COLUMNS, "data": [[s["start"], s["end"], s["text"]] for s in segments]}
        return Result(
            data=data,
            outputs=(text, table),
            # What the CLI prints: the TXT export (with times when asked for).
            text=plain_text(data).rstrip("\n") if text else "(no speech recognised)",
            notes=notes if len(prepared.pieces) > 1 else [],
        )

    def row_values(self, result: Result) -> dict[str, Any]:
        return {"transcript": result.data["text"]}

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        return (1 << 30, 4) if device == "cpu" else (1 << 30, 32)


def _languages(model: ModelView) -> dict[int, str]:
    """The languages a Whisper model knows, token id -> code (``{}``: an English-only model)."""
    config = model.model.generation_config
    if not getattr(config, "is_multilingual", False):
        return {}
    return {int(i): token.strip("<|>") for token, i in (getattr(config, "lang_to_id", None) or {}).items()}


def is_audio_file(name: str) -> bool:
    return any(name.lower().endswith(ext) for ext in AUDIO_EXTENSIONS)


SPEC = Transcribe()
