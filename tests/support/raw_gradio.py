"""Driving a Gradio app as its own page does, over plain HTTP: upload files, find an event of a
component by its ``elem_id``, join the queue and read the answer from the event stream.

For attacks the page itself never makes (another file's path, a private event), where
gradio_client refuses or hides what is sent. Runs on the calling thread.
"""

from __future__ import annotations

import html
import json
import re
import uuid
from pathlib import Path
from typing import Any

import httpx


def upload(http: httpx.Client, base: str, *files: Path) -> list[str]:
    """Upload ``files`` as the page does; the paths the server stored them at."""
    sent = [("files", (file.name, file.read_bytes(), "application/octet-stream")) for file in files]
    answer = http.post(f"{base}gradio_api/upload", files=sent)
    assert answer.status_code == 200, answer.text
    return answer.json()


def file_data(path: str) -> dict[str, Any]:
    """A file input as the page sends it (Gradio's FileData)."""
    return {"path": path, "orig_name": Path(path).name, "meta": {"_type": "gradio.FileData"}}


def event_index(http: httpx.Client, base: str, elem_id: str, event: str) -> int:
    """The index (``fn_index``) of the ``event`` handler of the component with ``elem_id``."""
    config = http.get(f"{base}config").json()
    ids = {c["id"] for c in config["components"] if c.get("props", {}).get("elem_id") == elem_id}
    for dependency in config["dependencies"]:
        if any(target[0] in ids and target[1] == event for target in dependency["targets"]):
            return dependency["id"]
    raise AssertionError(f"no {event} event on #{elem_id}")


def queue_call(
    http: httpx.Client, base: str, fn_index: int, data: list[Any], session: str | None = None
) -> tuple[int, Any]:
    """Join the queue with ``data`` for event ``fn_index`` and wait for its end: (the HTTP status of
    the join, the output data or the error's words; None when the join was refused). ``session``:
    the page's session, to call several events of one page (its State is kept per session)."""
    session = session or uuid.uuid4().hex[:11]
    joined = http.post(
        f"{base}gradio_api/queue/join",
        json={"data": data, "fn_index": fn_index, "session_hash": session, "event_data": None},
    )
    if joined.status_code != 200:
        return joined.status_code, joined.text
    with http.stream("GET", f"{base}gradio_api/queue/data", params={"session_hash": session}) as stream:
        for line in stream.iter_lines():
            if not line.startswith("data:"):
                continue
            message = json.loads(line[5:])
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                return 200, output.get("error") or output.get("data")
    return 200, None


# --- a task's API as the page calls it (the REST form: one POST, then its event stream) ----------


def call(http: httpx.Client, base: str, api: str, data: list) -> tuple[bool, str]:
    """Run the API endpoint ``api``: (True, the output as JSON text) or (False, the refusal's words)."""
    asked = http.post(f"{base}gradio_api/call/{api}", json={"data": data})
    if asked.status_code != 200:
        return False, asked.text
    answer = http.get(f"{base}gradio_api/call/{api}/{asked.json()['event_id']}").text
    event, _, rest = answer.partition("\ndata: ")
    if "event: complete" in event:
        return True, rest.strip()
    said = json.loads(rest.strip()) if rest.strip().startswith("{") else {"error": rest}
    return False, str(said.get("error") or said)


def call_with_file(http: httpx.Client, base: str, task: str, path: Path) -> tuple[bool, str]:
    """Upload ``path`` as the page does and give it to ``task`` (transcribe, classify, detect; the
    other inputs at their defaults)."""
    (stored,) = upload(http, base, path)
    given = file_data(stored)
    data = {
        "transcribe": [given, "", "auto", False, False],
        "classify": ["Image", "", given, "auto"],
        "detect": [given, "", 0.5],
    }[task]
    return call(http, base, task, data)


def batch_upload(http: httpx.Client, base: str, path: Path, session: str | None = None) -> tuple[bool, str]:
    """The Batch tab's upload of ``path``: (True, what the tab shows) or (False, the refusal)."""
    (stored,) = upload(http, base, path)
    event = event_index(http, base, "batch-file", "upload")
    status, said = queue_call(http, base, event, [[file_data(stored)]], session)  # the box takes several
    if status != 200 or isinstance(said, str) or refusal(said):
        return False, refusal(said) or str(said)
    return True, json.dumps(said)


def refusal(outputs: Any) -> str:
    """The words of the error a tab's message box shows among ``outputs`` ("" when none does)."""
    for value in outputs if isinstance(outputs, list) else []:
        if isinstance(value, str) and 'role="alert"' in value:
            return html.unescape(re.sub(r"<[^>]+>", " ", value)).strip()
    return ""


def batch_run(http: httpx.Client, base: str, path: Path, task: str) -> tuple[bool, str]:
    """``path`` uploaded to the Batch tab and run through ``task`` in the same page session: (True,
    the row's results) or (False, the refusal: at the upload, or the row's note)."""
    session = uuid.uuid4().hex[:11]
    ok, said = batch_upload(http, base, path, session)
    if not ok:
        return False, said
    config = http.get(f"{base}config").json()
    run = event_index(http, base, "batch-run", "click")
    (dependency,) = [d for d in config["dependencies"] if d["id"] == run]
    values = {c["id"]: c.get("props", {}).get("value") for c in config["components"]}
    data = [values.get(component) for component in dependency["inputs"]]
    data[2], data[3] = task, None  # state, column, task, model (its default), fast CPU, format, options
    status, out = queue_call(http, base, run, data, session)
    if status != 200 or isinstance(out, str) or not out or refusal(out):
        return False, refusal(out) or str(out)
    table = out[1] if isinstance(out[1], dict) else (out[1] or {}).get("value", {})
    table = table.get("value", table) if isinstance(table, dict) else {}
    headers, rows = table.get("headers") or [], table.get("data") or []
    note = rows[0][headers.index("note")] if rows and "note" in headers else ""
    return (not note), (note or json.dumps(rows[:1]))
