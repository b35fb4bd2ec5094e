"""``pipedesk --smoke-test``: start the app with no window and call every task once over HTTP.

It checks a packaged build end to end, the way a user's first start would use
it: the bundled frontend is served, every task answers through Gradio's plain
REST API (``POST /gradio_api/call/<api>``, then the event stream) on the models
the build or the models folder already holds, and the process exits 0 only if
all of them answered. It never downloads: ``HF_HUB_OFFLINE`` is set unless the
caller set it. Runs on the main thread; the server serves from its own thread.

Only the standard library is imported at module level, so the CLI can name
:func:`command` without importing gradio or torch.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, TextIO

log = logging.getLogger(__name__)

#: Small option values so generation stays quick on any model; other options keep their defaults.
SMOKE_OPTIONS: dict[str, Any] = {
    "max_new_tokens": 8,
    "temperature": 0.0,
    "min_length": 2,
    "max_length": 24,
    "prompt": "Answer in one word: {text}",  # a prompt over a row names a column of its example
}
CALL_TIMEOUT = 300.0  # seconds for one task, model loading included
#: Loopback only, and never through a proxy from the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class SmokeError(Exception):
    """One check failed; the message says how."""


@dataclass(frozen=True)
class Call:
    """One request of the smoke test: which endpoint, with which data."""

    label: str
    api: str
    data: tuple[Any, ...]


@dataclass(frozen=True)
class Outcome:
    """What one check found."""

    label: str
    ok: bool
    seconds: float
    detail: str

    def line(self) -> str:
        mark = "ok  " if self.ok else "FAIL"
        return f"{mark} {self.label:<16} {self.seconds:6.2f}s  {self.detail}"


def task_calls(specs: Iterable[Any], image: Any = None, audio: Any = None) -> list[Call]:
    """One call per task: its first example (or the uploaded photo or recording for tasks that take
    only one), the default model (``""``) and quick option values.

    ``image`` and ``audio`` are uploaded files' FileData; with ``image``, tasks that take text *or*
    an image (classify) get a second call, so the image path of the build is checked too.
    """
    calls = []
    for spec in specs:
        example = list(spec.examples[0]) if spec.examples else []
        # An example holds the inputs, then maybe the options shown with them (Labels' labels).
        shown = dict(zip([o.name for o in spec.options if o.main], example[len(spec.inputs) :], strict=False))
        options = [shown.get(o.name, SMOKE_OPTIONS.get(o.name, o.default)) for o in spec.options]
        media = {"image": image, "audio": audio}
        if spec.examples:
            calls.append(Call(spec.id, spec.id, (*example[: len(spec.inputs)], "", *options)))
            if image is not None and "image" in spec.inputs:
                calls.append(Call(f"{spec.id} (image)", spec.id, ("Image", "", image, "", *options)))
        elif len(spec.inputs) == 1 and spec.inputs[0] in media:
            if media[spec.inputs[0]] is None:
                raise SmokeError(f"task {spec.id} needs an uploaded {spec.inputs[0]}, and the upload failed")
            calls.append(Call(spec.id, spec.id, (media[spec.inputs[0]], "", *options)))
        else:
            raise SmokeError(f"task {spec.id} has no example to run")
    return calls


def parse_events(lines: Iterable[bytes]) -> list[Any]:
    """The outputs of a finished event stream, or SmokeError with the server's error."""
    event = ""
    for raw in lines:
        line = raw.decode("utf-8").rstrip("\r\n")
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data = line.partition(":")[2].strip()
            if event == "complete":
                return json.loads(data)
            if event == "error":
                raise SmokeError(f"the server answered with an error: {data[:300]}")
    raise SmokeError("the event stream ended without a result")


def call_api(base_url: str, api: str, data: Iterable[Any], timeout: float = CALL_TIMEOUT) -> list[Any]:
    """``POST /gradio_api/call/<api>`` then read its event stream; return the outputs."""
    body = json.dumps({"data": list(data)}).encode("utf-8")
    request = urllib.request.Request(
        f"{base_url}gradio_api/call/{api}",
        data=body,
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with _OPENER.open(request, timeout=30) as response:
        event_id = json.loads(response.read())["event_id"]
    with _OPENER.open(f"{base_url}gradio_api/call/{api}/{event_id}", timeout=timeout) as stream:
        return parse_events(stream)


def upload(base_url: str, filename: str, content: bytes) -> dict[str, Any]:
    """Upload a file (``POST /gradio_api/upload``) and return the FileData to pass to a task."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + content
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        f"{base_url}gradio_api/upload",
        data=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
        method="POST",
    )
    with _OPENER.open(request, timeout=30) as response:
        path = json.loads(response.read())[0]
    return {"path": path, "orig_name": filename, "meta": {"_type": "gradio.FileData"}}


def check_page(base_url: str) -> str:
    """The page and one of its scripts load: the frontend is inside the build."""
    with _OPENER.open(base_url, timeout=30) as response:
        html = response.read().decode("utf-8", "replace")
    scripts = re.findall(r'src="([^"]+\.js)"', html)
    if not scripts:
        raise SmokeError("the page has no script: Gradio's frontend files are missing")
    script = scripts[0].removeprefix("./").lstrip("/")
    url = script if script.startswith("http") else f"{base_url}{script}"
    with _OPENER.open(url, timeout=30) as response:
        size = len(response.read())
    if size == 0:
        raise SmokeError(f"{url} is empty")
    return f"page {len(html):,} bytes, {script.rsplit('/', 1)[-1]} {size:,} bytes"


def describe(outputs: list[Any]) -> str:
    """A short, one-line view of a task's outputs; SmokeError if they are empty."""
    if not outputs or all(value in (None, "", [], {}) for value in outputs):
        raise SmokeError(f"empty result: {outputs!r}")
    first = outputs[0]
    if isinstance(first, dict) and "label" in first:
        return f"label {first['label']!r}"
    text = first if isinstance(first, str) else json.dumps(first, ensure_ascii=False)
    text = " ".join(text.split())
    return repr(text[:70] + ("…" if len(text) > 70 else ""))


def _wav() -> bytes:
    """One second of a 440 Hz tone, 16 kHz mono WAV (standard library only)."""
    import math
    import struct
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(
            b"".join(
                struct.pack("<h", int(12_000 * math.sin(2 * math.pi * 440 * i / 16_000)))
                for i in range(16_000)
            )
        )
    return buffer.getvalue()


def _png() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (40, 40), (30, 90, 200)).save(buffer, format="PNG")
    return buffer.getvalue()


def _timed(label: str, action: Any) -> Outcome:
    started = time.perf_counter()
    try:
        detail = action()
        ok = True
    except (SmokeError, OSError, ValueError, KeyError, IndexError) as exc:
        detail = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SmokeError) else str(exc)
        ok = False
    return Outcome(label, ok, time.perf_counter() - started, detail)


def check_all(base_url: str, specs: Iterable[Any], say: Any) -> list[Outcome]:
    """The page, an upload, then every task once; ``say(line)`` reports each outcome as it comes."""
    outcomes: list[Outcome] = []

    def report(outcome: Outcome) -> None:
        outcomes.append(outcome)
        say(outcome.line())

    report(_timed("page", lambda: check_page(base_url)))
    image = audio = None
    try:
        image = upload(base_url, "smoke.png", _png())
        audio = upload(base_url, "smoke.wav", _wav())
    except (OSError, ValueError, KeyError, IndexError) as exc:
        report(Outcome("upload", False, 0.0, f"{type(exc).__name__}: {exc}"))
    try:
        calls = task_calls(specs, image, audio)
    except SmokeError as exc:
        calls = []
        report(Outcome("tasks", False, 0.0, str(exc)))
    for call in calls:
        report(_timed(call.label, lambda call=call: describe(call_api(base_url, call.api, call.data))))
    report(_timed("parquet", check_parquet))
    return outcomes


def check_parquet() -> str:
    """A file run's table written as Parquet and read back (pyarrow is packaged, trimmed)."""
    import tempfile
    from pathlib import Path

    from desktop.batch.writer import write_results
    from desktop.files.reader import read_table
    from desktop.files.table import Table

    table = Table(name="smoke.csv", format="csv", columns=["text"], rows=[["fine"], ["great"]])
    with tempfile.TemporaryDirectory() as folder:
        path = write_results(table, {0: {"label": "POSITIVE"}}, ["label"], Path(folder) / "smoke.parquet")
        back = read_table(path)
    if back.columns != ["text", "label", "note"] or back.rows[0][:2] != ["fine", "POSITIVE"]:
        raise SmokeError(f"Parquet read back as {back.columns} {back.rows[:1]}")
    return f"{len(back.rows)} rows written and read back"


def run(device: str | None = None, out: TextIO | None = None) -> int:
    """Start the server, run every check, print one line each; 0 only if all passed."""
    out = out or sys.stdout
    started = time.perf_counter()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from desktop import logs
    from desktop.models import bundled

    log_path = logs.setup(console=True)

    def say(line: str) -> None:
        print(line, file=out, flush=True)
        log.info("%s", line)  # a windowed build has no console: the log file has the report too

    from desktop import server
    from desktop.engine.start import open_door
    from desktop.tasks import TASKS
    from desktop.ui.app import build_app

    door = open_door(device, own_process=True)
    running = server.start(build_app(door), host=server.LOCAL_HOST)
    where = "packaged build" if getattr(sys, "frozen", False) else "from source"
    engine = f"engine process {getattr(door.engine, 'pid', None) or 'none (in-process)'}"
    say(
        f"Pipedesk smoke test ({where}; device {door.device}; {engine}; {len(bundled.bundled_repos())} bundled models)"
    )
    say(f"UI served at {running.url} {time.perf_counter() - started:.2f}s after the smoke test began")
    try:
        outcomes = check_all(running.url, TASKS.values(), say)
    finally:
        running.stop()
    failed = [o.label for o in outcomes if not o.ok]
    verdict = f"FAILED ({', '.join(failed)})" if failed else "passed"
    say(f"Smoke test {verdict} in {time.perf_counter() - started:.1f}s; log: {log_path}")
    return 1 if failed else 0


def command(args: argparse.Namespace) -> int:
    """The ``--smoke-test`` flag of the CLI."""
    return run(device=getattr(args, "device", None))
