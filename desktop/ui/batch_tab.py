"""The Batch tab: a whole file through a text task, with live progress, a chart and export.

Built on the main thread with the rest of the Blocks; its handlers run on
Gradio's worker threads. Each browser session's upload and results live in a
small registry keyed by a random id held in ``gr.State`` (the cancel flag has
to be reachable from the Cancel button while the run's generator works).
A run is a generator: every half second it yields the progress line, the
results table (first rows, input order, filling in), the chart and, at the
end, the export to download. Cancel stops after the batch in flight and keeps
what is done. Runs share one queue (``concurrency_id="batch"``); the model
calls inside go through ``Runtime.infer`` batch by batch, so the other tabs
still answer while a file is analysed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from desktop.batch import BatchProgress, BatchRun, task_spec
from desktop.batch_tasks import count_chart
from desktop.batchexport import write_results
from desktop.batchfiles import Table, read_table
from desktop.errors import UserError
from desktop.runtime import Runtime
from desktop.tasks import TASKS
from desktop.ui.handlers import progress_reporter, user_error

FILE_TYPES = [".csv", ".tsv", ".xlsx", ".jsonl", ".txt"]
EXPORTS = {"CSV": ".csv", "XLSX": ".xlsx", "JSONL": ".jsonl"}
SHOWN_ROWS = 200  # the results table shows the first rows; the export has them all
UPDATE_EVERY_S = 0.5
MAX_SESSIONS = 16
BATCH_QUEUE = "batch"


@dataclass
class Session:
    """One browser session's file and latest run."""

    table: Table
    column: str = ""
    task: str = ""
    results: dict[int, dict[str, Any]] = field(default_factory=dict)
    run: BatchRun | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    running: bool = False
    folder: Path | None = None


_SESSIONS: OrderedDict[str, Session] = OrderedDict()
_LOCK = threading.Lock()


def _store(session: Session) -> str:
    key = uuid.uuid4().hex
    with _LOCK:
        _SESSIONS[key] = session
        while len(_SESSIONS) > MAX_SESSIONS:
            _SESSIONS.popitem(last=False)
    return key


def _session(key: str | None) -> Session:
    with _LOCK:
        session = _SESSIONS.get(key or "")
    if session is None:
        raise UserError("Upload a file first (CSV, TSV, XLSX, JSONL or TXT with one text per line).")
    return session


def text_tasks() -> list[tuple[str, str]]:
    return [(spec.title, spec.id) for spec in TASKS.values() if spec.text_input]


def model_choices(task: str) -> tuple[list[tuple[str, str]], str]:
    spec = task_spec(task)
    return spec.model_choices(), spec.default_model.repo


# --- pure helpers (tested without a browser) ----------------------------------------------


def results_frame(session: Session, limit: int = SHOWN_ROWS) -> pd.DataFrame:
    """The first ``limit`` rows: number, text, result columns (entities shown as words), note."""
    table, columns = session.table, list(session.run.columns if session.run else ())
    index = table.column_index(session.column)
    rows = []
    for number, row in enumerate(table.rows[:limit]):
        result = session.results.get(number)
        text = row[index] if index < len(row) else ""
        values = ["" if result is None else _show(result.get(c)) for c in columns]
        note = "…" if result is None else str(result.get("note") or "")
        rows.append([number + 1, _short(text), *values, note])
    return pd.DataFrame(rows, columns=["#", session.column, *columns, "note"])


def chart_frame(session: Session) -> pd.DataFrame | None:
    """How many rows got each label (or how many entities of each type), most first."""
    if session.run is None or session.run.adapter.chart_title is None:
        return None
    counts = count_chart(session.run.adapter, session.results.values())
    return pd.DataFrame(counts.most_common(), columns=["value", "count"])


def export(session: Session, fmt: str) -> Path:
    """Write the input with the result columns appended, for download."""
    import gradio.utils

    if session.folder is None:
        session.folder = Path(gradio.utils.get_upload_folder()) / "pipedesk-batch" / uuid.uuid4().hex
    stem = Path(session.table.name).stem or "results"
    target = session.folder / f"{stem}-{session.task}{EXPORTS.get(fmt, '.csv')}"
    return write_results(session.table, session.results, session.run.columns, target, prefix=session.task)


def _show(value: Any) -> Any:
    if isinstance(value, list):  # NER entities
        return ", ".join(f"{e.get('entity')} ({e.get('type')})" for e in value if isinstance(e, dict))
    return "" if value is None else value


def _short(value: Any, limit: int = 300) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the tab -----------------------------------------------------------------------------


def build(runtime: Runtime, context: Any) -> None:
    """Add the Batch tab (inside the app's gr.Tabs)."""
    from desktop import settings

    choices, default = model_choices("sentiment")
    with gr.Tab("Batch", id="batch"):
        gr.Markdown(
            "Analyse a whole file: CSV, TSV, XLSX, JSONL, or TXT with one text per line. "
            "Results keep the file's row order; download them with the result columns appended.",
            elem_classes="task-description",
        )
        key = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                upload = gr.File(label="File", file_types=FILE_TYPES, type="filepath", elem_id="batch-file")
                column = gr.Dropdown(
                    label="Text column", choices=[], interactive=True, elem_id="batch-column"
                )
                task = gr.Dropdown(
                    label="Task", choices=text_tasks(), value="sentiment", elem_id="batch-task"
                )
                model = gr.Dropdown(
                    label="Model",
                    choices=choices,
                    value=default,
                    allow_custom_value=True,
                    filterable=True,
                    elem_id="batch-model",
                )
                fast = gr.Checkbox(
                    label="Fast CPU mode (int8 weights: faster, nearly the same results; classification and NER)",
                    value=settings.load().fast_cpu,
                    visible=runtime.device == "cpu",
                )
                with gr.Row():
                    run = gr.Button("Run", variant="primary", elem_id="batch-run")
                    cancel = gr.Button("Cancel", variant="stop", elem_id="batch-cancel")
            with gr.Column(scale=2):
                info = gr.Markdown("Upload a file to see its first rows.", elem_id="batch-info")
                preview = gr.Dataframe(
                    label="First rows", interactive=False, wrap=True, elem_id="batch-preview"
                )
        progress = gr.Markdown("", elem_id="batch-progress")
        results = gr.Dataframe(label="Results", interactive=False, wrap=True, elem_id="batch-results")
        chart = gr.BarPlot(
            x="value", y="count", title="Results", height=280, visible=False, elem_id="batch-chart"
        )
        with gr.Row():
            fmt = gr.Radio(list(EXPORTS), value="CSV", label="Export as", elem_id="batch-format")
            download = gr.DownloadButton("Download results", visible=False, elem_id="batch-download")

        def on_upload(path: str | None) -> tuple[Any, ...]:
            if not path:
                return (
                    None,
                    "Upload a file to see its first rows.",
                    None,
                    gr.update(choices=[], value=None),
                    gr.update(visible=False),
                )
            try:
                table = read_table(path)
            except Exception as exc:
                raise user_error(exc) from None
            for warning in table.warnings:
                gr.Warning(warning)
            guess = table.guess_column()
            lines = [f"**{table.name}**: {len(table.rows):,} rows, {len(table.columns)} columns."]
            lines += [f"⚠ {w}" for w in table.warnings]
            frame = pd.DataFrame(table.preview(), columns=table.columns)
            picker = gr.update(choices=table.columns, value=guess)
            return _store(Session(table=table)), "\n\n".join(lines), frame, picker, gr.update(visible=False)

        def on_task(task_id: str) -> Any:
            choices, default = model_choices(task_id)
            return gr.update(choices=choices, value=default)

        def on_run(
            key_value: str | None,
            column_value: str,
            task_id: str,
            model_value: str,
            fast_cpu: bool,
            fmt_value: str,
            gr_progress: gr.Progress = gr.Progress(),  # noqa: B008
        ) -> Iterator[tuple[Any, ...]]:
            session, mine = None, False
            try:
                session = _session(key_value)
                if not column_value:
                    raise UserError("Choose the column that holds the texts.")
                session.column = session.table.columns[session.table.column_index(column_value)]
                if session.running:
                    raise UserError("This file is already being analysed: wait for it, or cancel it first.")
                session.task, session.results, session.cancel = task_id, {}, threading.Event()
                session.running = mine = True
                texts = session.table.texts(session.column)
                yield "Loading the model…", gr.update(), gr.update(), gr.update(visible=False)
                session.run = BatchRun(
                    runtime,
                    task_id,
                    texts,
                    model_value,
                    fast_cpu=fast_cpu,
                    cancel=session.cancel,
                    load_progress=progress_reporter(gr_progress),
                )
                last = 0.0
                for event in session.run:
                    session.results.update(event.results)
                    for note in event.notes:
                        gr.Warning(note)
                    if event.state == "running" and time.monotonic() - last < UPDATE_EVERY_S:
                        continue
                    last = time.monotonic()
                    if event.state == "running":
                        yield _view(session, event), results_frame(session), _chart(session), gr.update()
                    else:
                        path = export(session, fmt_value)
                        yield (
                            _view(session, event),
                            results_frame(session),
                            _chart(session),
                            gr.update(value=str(path), visible=True),
                        )
            except Exception as exc:
                raise user_error(exc) from None
            finally:
                if mine and session is not None:
                    session.running = False

        def on_cancel(key_value: str | None) -> str:
            with _LOCK:
                session = _SESSIONS.get(key_value or "")
            if session is None or not session.running:
                return "Nothing is running."
            session.cancel.set()
            return "Cancelling after the batch in flight; the rows done so far are kept…"

        def on_format(fmt_value: str, key_value: str | None) -> Any:
            with _LOCK:
                session = _SESSIONS.get(key_value or "")
            if session is None or session.run is None or not session.results:
                return gr.update()
            try:
                return gr.update(value=str(export(session, fmt_value)), visible=True)
            except Exception as exc:
                raise user_error(exc) from None

        upload.change(
            on_upload, inputs=upload, outputs=[key, info, preview, column, download], api_visibility="private"
        )
        task.change(on_task, inputs=task, outputs=model, api_visibility="private", queue=False)
        running = run.click(
            on_run,
            inputs=[key, column, task, model, fast, fmt],
            outputs=[progress, results, chart, download],
            api_visibility="private",
            concurrency_id=BATCH_QUEUE,
            concurrency_limit=1,
        )
        if getattr(context, "status", None) is not None:
            running.then(
                lambda: runtime.status.line(), outputs=context.status, api_visibility="private", queue=False
            )
        cancel.click(on_cancel, inputs=key, outputs=progress, api_visibility="private", queue=False)
        fmt.change(on_format, inputs=[fmt, key], outputs=download, api_visibility="private")


def _view(session: Session, event: BatchProgress) -> str:
    line = f"**{event.line()}** — {session.run.model if session.run else ''}"
    if event.state == "cancelled":
        line += f"\n\nCancelled: the {len(session.results):,} rows done are kept; the export marks the others as not analysed."
    return line


def _chart(session: Session) -> Any:
    frame = chart_frame(session)
    if frame is None:
        return gr.update(visible=False)
    title = session.run.adapter.chart_title if session.run else "value"
    what = "Entities by type" if title == "entity type" else "Rows by label"
    return gr.update(value=frame, visible=True, x_title=title.capitalize(), y_title="Count", title=what)
