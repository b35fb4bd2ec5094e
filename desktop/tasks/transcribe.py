"""Transcribe: speech to text with Whisper, in 30-second windows batched together, with times for
segments and words if asked, and subtitles people can use.

A recording is decoded to 16 kHz mono (:mod:`desktop.files.audio`) and split into the 30-second
windows Whisper reads; windows go through the model in batches (a long recording's windows
together, and a folder run's windows across recordings), on CTranslate2 in int8 where the processor
gains (:mod:`desktop.engine.whisper`). The parts are joined and every segment's (and word's) times
shifted to where its window starts, so nothing is cut. The language is detected for each window
unless one is chosen. Results export as plain text, SubRip and WebVTT subtitles
(:mod:`desktop.tasks.subtitles`, the one definition of the subtitle rules) and JSON.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from desktop.errors import Stopped, UserError
from desktop.files import OWNER, Limits
from desktop.files.audio import AUDIO_EXTENSIONS, SAMPLE_RATE, load_audio
from desktop.models.ref import ModelRef
from desktop.tasks import timing
from desktop.tasks.spec import ModelView, Option, Piece, Prepared, Result, Stop, TaskSpec
from desktop.tasks.subtitles import clock, srt, vtt

WINDOW_SECONDS = 30
#: Audio samples per log-mel frame (10 ms): a window's frames that hold sound, for word alignment.
SAMPLES_PER_FRAME = 160
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
    Option(
        "word_timestamps",
        False,
        "Give every word its start and end time too (turns timestamps on).",
        bool,
        ("checkbox", "Word timestamps", "Times for every word (subtitles cut at pauses; words in the JSON)"),
    ),
)
COLUMNS = ["start", "end", "text"]


def plain_text(result_data: dict[str, Any]) -> str:
    """What the TXT export holds: the transcript, one segment per line when there are times."""
    segments = result_data.get("segments") or []
    if result_data.get("timestamps") and segments:
        return "\n".join(f"[{clock(s['start'], '.')}] {s['text'].strip()}" for s in segments) + "\n"
    return result_data["text"] + "\n"


class Transcribe(TaskSpec):
    id = "transcribe"
    title = "Transcribe"
    description = (
        "Turns speech into text (Whisper). Long recordings are transcribed in 30-second parts, several at "
        "a time; times for segments and words, and subtitles (SRT, VTT), if you ask."
    )
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
    export_formats = ("txt", "srt", "vtt", "json")
    window_rows = 8  # recordings decoded at once in a folder run (an hour is 230 MB decoded)

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

    def check_options(self, options: dict[str, Any]) -> dict[str, Any]:
        checked = super().check_options(options)
        if checked["word_timestamps"]:  # words are timed within their segments
            checked["timestamps"] = True
        return checked

    def forward(
        self, model: ModelView, pieces: list[Piece], options: dict[str, Any], stop: Stop
    ) -> list[Any]:
        net = model.model
        features = model.features([p.audio for p in pieces], sampling_rate=SAMPLE_RATE, return_tensors="np")
        encoded = net.encode(features.input_features, stop)
        if encoded is None:
            raise Stopped
        known = _languages(model)
        if not known:  # an English-only model takes no language and no task
            languages = ["en"] * len(pieces)
        elif options["language"] == "auto":
            languages = net.detect_language(encoded)
        else:
            languages = [options["language"]] * len(pieces)
        starts = [_start(net.generation_config, language, bool(known)) for language in languages]
        no_times = net.generation_config.no_timestamps_token_id
        prompts = [start if options["timestamps"] else [*start, no_times] for start in starts]
        generated = net.generate(encoded, prompts, stop)
        if generated is None:
            raise Stopped
        windows = [timing.segments(tokens, no_times + 1) for tokens in generated]
        if options["word_timestamps"]:
            _time_words(model, encoded, pieces, windows, starts, languages)
        texts = iter(model.decode([s.tokens for window in windows for s in window]))
        return [
            {
                "language": language,
                "segments": [
                    {"start": s.start, "end": s.end, "text": next(texts), "words": s.words} for s in window
                ],
            }
            for window, language in zip(windows, languages, strict=True)
        ]

    def postprocess(
        self, model: ModelView, prepared: Prepared, outputs: list[Any], options: dict[str, Any]
    ) -> Result:
        segments: list[dict[str, Any]] = []
        seconds = prepared.context["seconds"]
        for piece, out in zip(prepared.pieces, outputs, strict=True):
            offset = piece.part * WINDOW_SECONDS
            window_end = min(float(seconds), float(offset + WINDOW_SECONDS))
            parts = out["segments"] if options["timestamps"] else [_joined(out["segments"])]
            for part in parts or [{"start": 0.0, "end": None, "text": "", "words": []}]:
                end = window_end if part["end"] is None else min(window_end, offset + float(part["end"]))
                segment = {
                    "start": round(offset + float(part["start"]), 2),
                    "end": round(end, 2),
                    "text": part["text"].strip(),
                }
                if options["word_timestamps"]:
                    segment["words"] = [
                        {
                            "start": round(min(offset + w["start"], window_end), 2),
                            "end": round(min(offset + w["end"], window_end), 2),
                            "word": w["word"],
                        }
                        for w in part["words"]
                    ]
                segments.append(segment)
        text = " ".join(s["text"] for s in segments if s["text"]).strip()
        notes = [f"The recording ({seconds:,.0f} s) was transcribed in {len(prepared.pieces)} parts."]
        data = {
            "text": text,
            "segments": segments,
            "language": Counter(out["language"] for out in outputs).most_common(1)[0][0],
            "timestamps": options["timestamps"],
            "word_timestamps": options["word_timestamps"],
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

    def exports(self, result: Result) -> dict[str, str]:
        """The transcript as TXT, SRT and VTT subtitles, and JSON (segments, their words when timed)."""
        segments = result.data.get("segments") or []
        return {
            "txt": plain_text(result.data),
            "srt": srt(segments),
            "vtt": vtt(segments),
            "json": json.dumps(result.data, ensure_ascii=False, indent=2) + "\n",
        }

    def result_columns(self, options: dict[str, Any]) -> tuple[str, ...]:
        """The transcript; with timestamps also its segments (and their words), as JSON."""
        return ("transcript", "segments") if self.check_options(options)["timestamps"] else self.columns

    def row_values(self, result: Result) -> dict[str, Any]:
        values = {"transcript": result.data["text"]}
        if result.data["timestamps"]:
            values["segments"] = result.data["segments"]
        return values

    def batch_limits(self, device: str, model: ModelView) -> tuple[int, int]:
        # Windows per batch: 8 on the CPU (benchmarks/README.md: decoding 8 together was 1.5-2x one
        # at a time; more gained nothing), 16 on a GPU.
        return (1 << 30, 8) if device == "cpu" else (1 << 30, 16)


def _start(config: Any, language: str, multilingual: bool) -> list[int]:
    """What a window's decoding starts with: <|startoftranscript|>, and for a multilingual model the
    language and the task (the no-timestamps token follows unless times are asked for)."""
    start = [config.decoder_start_token_id]
    if multilingual:
        start += [config.lang_to_id[f"<|{language}|>"], config.task_to_id["transcribe"]]
    return start


def _joined(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """A window's segments as one (the transcript without times)."""
    text = " ".join(p["text"].strip() for p in parts if p["text"].strip())
    return {"start": 0.0, "end": None, "text": text, "words": []}


def _time_words(
    model: ModelView,
    encoded: Any,
    pieces: list[Piece],
    windows: list[list[timing.Segment]],
    starts: list[list[int]],
    languages: list[str],
) -> None:
    """Time every word of every segment (``Segment.words``, seconds from the window's start) from the
    model's alignment of the windows' text with their sound; windows that share a prompt together."""
    decode = lambda ids: model.decode([ids])[0]  # noqa: E731
    groups = [
        [timing.word_groups(s.tokens, model.token_texts(s.tokens), language, decode) for s in window]
        for window, language in zip(windows, languages, strict=True)
    ]
    spoken = [i for i, window in enumerate(windows) if any(s.tokens for s in window)]
    for start in {tuple(starts[i]) for i in spoken}:
        rows = [i for i in spoken if tuple(starts[i]) == start]
        texts = [[t for s in windows[i] for t in s.tokens] for i in rows]
        frames = [min(max(2, len(pieces[i].audio) // SAMPLES_PER_FRAME), WINDOW_SECONDS * 100) for i in rows]
        alignments = model.model.align(encoded[rows], list(start), texts, frames)
        for row, alignment in zip(rows, alignments, strict=True):
            counts = [len(ids) for words in groups[row] for _text, ids in words]
            times = iter(timing.word_times(counts, alignment))
            for segment, words in zip(windows[row], groups[row], strict=True):
                spans = [next(times) for _ in words]
                end = WINDOW_SECONDS if segment.end is None else segment.end
                segment.words = timing.timed_words(segment, words, spans, 0.0, end)


def _languages(model: ModelView) -> dict[int, str]:
    """The languages a Whisper model knows, token id -> code (``{}``: an English-only model)."""
    config = model.model.generation_config
    if not getattr(config, "is_multilingual", False):
        return {}
    return {int(i): token.strip("<|>") for token, i in (getattr(config, "lang_to_id", None) or {}).items()}


def is_audio_file(name: str) -> bool:
    return any(name.lower().endswith(ext) for ext in AUDIO_EXTENSIONS)


SPEC = Transcribe()
