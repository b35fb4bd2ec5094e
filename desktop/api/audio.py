"""``/v1/audio/transcriptions``: a recording uploaded as OpenAI's multipart form, transcribed by the
Transcribe task, answered as ``json``, ``text``, ``srt``, ``vtt`` or ``verbose_json`` (segments with
their times, and each word's with ``timestamp_granularities[]=word``).

The upload streams to a file of its own in the sender's upload folder (:mod:`desktop.api.files`:
a visitor's stays in the visitors' folder, counted against their quota by the visitors' gate),
which the task opens through :mod:`desktop.files` with the sender's limits, and which is removed
once the answer is ready. Runs on the server's event loop; the engine on a worker thread.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from desktop.api.files import Handed
from desktop.api.work import ApiError, Worker, endpoint, json_response
from desktop.errors import UserError
from desktop.tasks import TASKS, subtitles, transcribe

FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
NOT_MULTIPART = "Send the recording as multipart/form-data with a 'file' part, as the openai client does."
UNREADABLE = "The upload could not be read: the request is not well-formed multipart/form-data."
#: Seconds of audio per segment ``seek`` step in OpenAI's verbose_json (its 10 ms frames).
FRAMES_PER_SECOND = 100


async def read_form(request: Any, handed: Handed) -> tuple[dict[str, list[str]], list[Path]]:
    """The form's fields (each name's values) and its files, written into ``handed``'s folder as
    they stream in (never into the system's temporary folder)."""
    from python_multipart.multipart import FormParser, parse_options_header

    content_type, params = parse_options_header(request.headers.get("content-type", ""))
    if content_type != b"multipart/form-data" or not params.get(b"boundary"):
        raise ApiError(400, NOT_MULTIPART)
    fields: dict[str, list[str]] = {}
    parts: list[Any] = []

    def on_field(field: Any) -> None:
        name = (field.field_name or b"").decode("latin-1")
        fields.setdefault(name, []).append((field.value or b"").decode("utf-8", "replace"))

    config = {"UPLOAD_DIR": str(handed.folder), "MAX_MEMORY_FILE_SIZE": 0, "UPLOAD_DELETE_TMP": False}
    parser = FormParser(
        "multipart/form-data", on_field, parts.append, boundary=params[b"boundary"], config=config
    )
    try:
        async for chunk in request.stream():
            parser.write(chunk)
        parser.finalize()
    except Exception as exc:
        if type(exc).__module__.startswith("python_multipart"):
            raise ApiError(400, UNREADABLE) from None
        raise
    files = []
    for part in parts:
        part.close()
        name = (part.file_name or b"").decode("utf-8", "replace")
        where = Path(part.actual_file_name.decode() if isinstance(part.actual_file_name, bytes) else "")
        if part.field_name == b"file" and where.is_file():
            files.append(where.rename(handed.path_for(name, "recording")))
    return fields, files


def one(fields: dict[str, list[str]], name: str) -> str | None:
    values = fields.get(name) or []
    return values[-1].strip() if values else None


def check_request(fields: dict[str, list[str]]) -> tuple[str, str, bool]:
    """(response_format, language, whether words are timed) of a transcription request; UserError for
    what Pipedesk does not do."""
    shape = one(fields, "response_format") or "json"
    if shape not in FORMATS:
        raise UserError(f"response_format must be one of {', '.join(FORMATS)}, not {shape!r}.")
    temperature = one(fields, "temperature")
    try:
        greedy = temperature in (None, "") or float(temperature) == 0
    except ValueError:
        greedy = False
    if not greedy:
        raise UserError("Pipedesk transcribes without sampling: temperature must be 0 or left out.")
    if one(fields, "prompt"):
        raise UserError("Pipedesk does not take a prompt for transcriptions: leave prompt out.")
    granularities = [*fields.get("timestamp_granularities[]", []), *fields.get("timestamp_granularities", [])]
    granularities = {value.strip() for value in granularities} - {""}
    if granularities - {"segment", "word"}:
        raise UserError("timestamp_granularities takes 'segment' and 'word'.")
    if granularities and shape != "verbose_json":
        raise UserError("timestamp_granularities needs response_format 'verbose_json', as OpenAI's does.")
    if (one(fields, "stream") or "false").lower() not in ("false", "0", ""):
        raise UserError("Pipedesk sends a transcription whole: leave stream out.")
    language = transcribe.OPTIONS[0].check(one(fields, "language"), "language")
    return shape, language, "word" in granularities


def language_name(code: str) -> str:
    """OpenAI names the language it heard ("english"); a code Pipedesk has no name for stays a code."""
    return next((label.lower() for label, value in transcribe.LANGUAGES if value == code), code)


def answer(shape: str, data: dict[str, Any]) -> Any:
    """The transcript in the response format asked for."""
    from starlette.responses import PlainTextResponse

    text, segments = data["text"], data.get("segments") or []
    if shape == "text":
        return PlainTextResponse(text + "\n")
    if shape == "srt":
        return PlainTextResponse(subtitles.srt(segments))
    if shape == "vtt":
        return PlainTextResponse(subtitles.vtt(segments), media_type="text/vtt")
    spent = {"type": "duration", "seconds": math.ceil(data["seconds"])}
    if shape == "json":
        return json_response({"text": text, "usage": spent})
    timed = [
        {
            "id": number,
            "seek": int(segment["start"] // transcribe.WINDOW_SECONDS * transcribe.WINDOW_SECONDS)
            * FRAMES_PER_SECOND,
            "start": segment["start"],
            "end": segment["end"],
            "text": segment["text"],
            "tokens": [],
            "temperature": 0.0,
        }
        for number, segment in enumerate(segments)
    ]
    return json_response(
        {
            "task": "transcribe",
            "language": language_name(data["language"]),
            "duration": data["seconds"],
            "text": text,
            "segments": timed,
            **({"words": words} if (words := _words(segments)) else {}),
            "usage": spent,
        }
    )


def _words(segments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every timed word, in OpenAI's shape (``word``, ``start``, ``end``); none unless words were timed."""
    return [
        {"word": word["word"].strip(), "start": word["start"], "end": word["end"]}
        for segment in segments
        for word in segment.get("words") or []
    ]


class Transcriptions:
    """The endpoint for one server's door (the owner's, or visitors' with their limits)."""

    def __init__(self, door: Any, worker: Worker) -> None:
        self.door, self.worker = door, worker

    @endpoint
    async def transcriptions(self, request: Any) -> Any:
        handed = Handed(self.worker.visitors)
        try:
            fields, files = await read_form(request, handed)
            if len(files) != 1:
                raise UserError("Send one recording, as the form's 'file' part.")
            shape, language, words = check_request(fields)
            timestamps = shape in ("srt", "vtt", "verbose_json")
            spec = TASKS["transcribe"]
            result = await self.worker.run(
                self.door.predict, spec, str(files[0]), one(fields, "model"), language, timestamps, words
            )
            return answer(shape, result.data)
        finally:
            handed.remove()
