"""The Batch tab: a whole file through a text task, with live progress, a chart and export.

Built on the main thread with the rest of the Blocks; its handlers run on
Gradio's worker threads. Each browser session's upload and results live in a
:class:`Session` held in that session's own ``gr.State`` (Gradio keeps State
per browser session, so the owner and each LAN visitor have their own; the
Cancel button reaches the run's cancel flag through it). A run is a
generator: every half second it yields the progress line, the results table
(first rows, input order, filling in: result columns first, then the text),
the chart and, at the end, the export to download. Cancel stops after the batch in flight and keeps
what is done. Runs share one queue (``concurrency_id="batch"``); the model
calls inside go through ``Runtime.infer`` batch by batch, so the other tabs
still answer while a file is analysed.
"""

from __future__ import annotations

import html
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from desktop.batch.rows import file_values
from desktop.batch.run import BatchProgress, BatchRun, RunState, count_chart, task_spec
from desktop.batch.writer import write_results
from desktop.engine.runtime import Runtime
from desktop.errors import UserError
from desktop.files.reader import read_table
from desktop.files.table import Table
from desktop.tasks import TASKS
from desktop.ui import model_lists
from desktop.ui.handlers import output_folder, progress_reporter, status_text, user_error
from desktop.ui.widgets import option_controls

FILE_TYPES = [".csv", ".tsv", ".xlsx", ".jsonl", ".txt"]
EXPORTS = {"CSV": ".csv", "XLSX": ".xlsx", "JSONL": ".jsonl"}
SHOWN_ROWS = 200  # the results table shows the first rows; the export has them all
UPDATE_EVERY_S = 0.5
BATCH_QUEUE = "batch"
CHART_BARS = 20  # the most frequent values get a bar each; the rest are counted as "other"


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


def _session(session: Session | None) -> Session:
    if not isinstance(session, Session):
        raise UserError("Upload a file first (CSV, TSV, XLSX, JSONL or TXT with one text per line).")
    return session


def text_tasks() -> list[tuple[str, str]]:
    # Recordings go through `pipedesk batch transcribe` (a folder of files), not a table of texts.
    return [(spec.title, spec.id) for spec in TASKS.values() if spec.file_input not in (None, "audio")]


def task_options(task: str, keys: list[tuple[str, str]], values: tuple[Any, ...]) -> dict[str, Any]:
    """The values of ``task``'s own option controls, by option name (``keys``: (task, option) per control)."""
    return {name: value for (owner, name), value in zip(keys, values, strict=True) if owner == task}


def shows_column(task: str) -> bool:
    """Whether ``task`` reads one text column (the picker is shown) or whole rows (hidden)."""
    return not task_spec(task).reads_rows


def model_update(runtime: Runtime, task: str, current: str | None, local: bool) -> dict[str, Any]:
    """The Model list for ``task`` on files: the task's models with their states, imported ones too."""
    return model_lists.update(task_spec(task), runtime.store, current, local=local, task=task)


# --- pure helpers (tested without a browser) ----------------------------------------------


def results_frame(session: Session, limit: int = SHOWN_ROWS) -> pd.DataFrame:
    """The first ``limit`` rows: number, result columns (entities shown as words, long answers cut
    short), note, then the text (cut short), so the results are in view without scrolling sideways."""
    table, columns = session.table, list(session.run.columns if session.run else ())
    index = table.column_index(session.column)
    rows = []
    for number, row in enumerate(table.rows[:limit]):
        result = session.results.get(number)
        text = row[index] if index < len(row) else ""
        values = ["" if result is None else _cell(result.get(c)) for c in columns]
        note = "…" if result is None else str(result.get("note") or "")
        rows.append([number + 1, *values, note, _short(text, 160)])
    return pd.DataFrame(rows, columns=["#", *columns, "note", session.column])


def chart_counts(session: Session) -> Counter[str] | None:
    """How many rows got each label (or how many entities of each type); None: no chart for the task."""
    if session.run is None or session.run.spec.chart_title is None:
        return None
    return count_chart(session.run.spec, session.results.values())


def chart_html(counts: Counter[str], title: str, what: str) -> str:
    """A horizontal bar chart: bars start at 0, lengths proportional to the counts, each labelled
    with its count (most frequent first; past ``CHART_BARS`` values the rest are one "other" bar)."""
    ordered = counts.most_common()
    if len(ordered) > CHART_BARS:
        rest = sum(n for _, n in ordered[CHART_BARS - 1 :])
        ordered = [*ordered[: CHART_BARS - 1], ("other", rest)]
    top = max((n for _, n in ordered), default=0)
    rows = []
    for name, count in ordered:
        share = 100.0 * count / top if top else 0.0
        label = html.escape(str(name))
        rows.append(
            f'<div class="pd-bar" role="listitem" data-label="{label}" data-count="{count}">'
            f'<span class="pd-bar-name" title="{label}">{label}</span>'
            f'<span class="pd-bar-track"><span class="pd-bar-fill" style="width:{share:.2f}%"></span></span>'
            f'<span class="pd-bar-count">{count:,}</span></div>'
        )
    body = "".join(rows) or '<p class="pd-bar-empty">No results yet.</p>'
    return (
        f'<figure class="pd-chart" aria-label="{html.escape(title)}"><figcaption>{html.escape(title)} '
        f'<span class="pd-chart-axis">({html.escape(what)}, count)</span></figcaption>'
        f'<div role="list">{body}</div></figure>'
    )


def export(session: Session, fmt: str, root: Path) -> Path:
    """Write the input with the result columns appended, for download, under ``root`` (the app's
    output folder)."""
    if session.folder is None:
        session.folder = root / "pipedesk-batch" / uuid.uuid4().hex
    stem = Path(session.table.name).stem or "results"
    target = session.folder / f"{stem}-{session.task}{EXPORTS.get(fmt, '.csv')}"
    return write_results(session.table, session.results, session.run.columns, target, prefix=session.task)


def _show(value: Any) -> Any:
    if isinstance(value, list):  # NER entities
        return ", ".join(f"{e.get('entity')} ({e.get('type')})" for e in value if isinstance(e, dict))
    return "" if value is None else value


def _cell(value: Any) -> Any:
    shown = _show(value)
    return _short(shown, 48) if isinstance(shown, str) else shown


def _short(value: Any, limit: int = 300) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- the tab -----------------------------------------------------------------------------


def build(runtime: Runtime, context: Any) -> None:
    """Add the Batch tab (inside the app's gr.Tabs)."""
    from desktop import settings

    local = getattr(context, "local", True)
    folder = output_folder(local)
    first = model_update(runtime, "sentiment", None, local)
    with gr.Tab("Batch", id="batch") as tab:
        gr.Markdown(
            "Analyse a whole file: CSV, TSV, XLSX, JSONL, or TXT with one text per line. "
            "Results keep the file's row order; download them with the result columns appended.",
            elem_classes="task-description",
        )
        state = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                upload = gr.File(label="File", file_types=FILE_TYPES, type="filepath", elem_id="batch-file")
                column = gr.Dropdown(
                    label="Text column", choices=[], interactive=True, elem_id="batch-column"
                )
                task = gr.Dropdown(
                    label="Task", choices=text_tasks(), value="sentiment", elem_id="batch-task"
                )
                option_keys, option_boxes, option_groups = option_controls(
                    [TASKS[task_id] for _title, task_id in text_tasks()],
                    shown="sentiment",
                    prefix="batch-options",
                )
                model = gr.Dropdown(
                    label="Model",
                    choices=first["choices"],
                    value=first["value"],
                    allow_custom_value=local,
                    filterable=True,
                    elem_id="batch-model",
                )
                fast = gr.Checkbox(
                    label="Fast CPU mode (int8 weights where this processor runs them faster; "
                    "classification, NER and Labels' NLI)",
                    value=settings.load().fast_cpu,
                    visible=False,  # shown once the device is known to be the CPU (torch loads late)
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
        with gr.Row(equal_height=False):
            with gr.Column(scale=3):
                results = gr.Dataframe(
                    label="Results", interactive=False, wrap=True, max_height=520, elem_id="batch-results"
                )
            with gr.Column(scale=2, min_width=260, elem_id="batch-chart-column"):  # hidden with no chart
                chart = gr.HTML("", visible=False, elem_id="batch-chart")
        with gr.Row():
            fmt = gr.Radio(list(EXPORTS), value="CSV", label="Export as", elem_id="batch-format")
            download = gr.DownloadButton("Download results", visible=False, elem_id="batch-download")

        def on_upload(path: str | None) -> tuple[Any, ...]:
            if not path:
                empty = gr.update(choices=[], value=None)
                return None, "Upload a file to see its first rows.", None, empty, gr.update(visible=False)
            try:
                table = read_table(path, limits=runtime.limits)
            except Exception as exc:
                raise user_error(exc) from None
            for warning in table.warnings:
                gr.Warning(warning)
            lines = [f"**{table.name}**: {len(table.rows):,} rows, {len(table.columns)} columns."]
            lines += [f"⚠ {w}" for w in table.warnings]
            try:
                guess = table.guess_column()
            except UserError as exc:  # a file of numbers: nothing is preselected, and it says why
                guess = None
                lines.append(f"⚠ {exc}")
            frame = pd.DataFrame(table.preview(), columns=table.columns)
            picker = gr.update(choices=table.columns, value=guess)
            return Session(table=table), "\n\n".join(lines), frame, picker, gr.update(visible=False)

        def on_run(
            current: Session | None,
            column_value: str,
            task_id: str,
            model_value: str,
            fast_cpu: bool,
            fmt_value: str,
            gr_progress: gr.Progress = gr.Progress(),  # noqa: B008  (Gradio inserts it here)
            *option_values: Any,
        ) -> Iterator[tuple[Any, ...]]:
            session, mine = None, False
            try:
                session = _session(current)
                spec = task_spec(task_id)
                options = spec.check_options(task_options(task_id, option_keys, option_values))
                table = session.table
                if spec.reads_rows:
                    column_value = spec.columns_read(table.columns, options)[0]
                elif not column_value:
                    raise UserError("Choose the column that holds the texts.")
                session.column = table.columns[table.column_index(column_value)]
                if session.running:
                    raise UserError("This file is already being analysed: wait for it, or cancel it first.")
                session.task, session.results, session.cancel = task_id, {}, threading.Event()
                session.running = mine = True
                texts = file_values(table, spec, session.column)
                yield "Loading the model…", gr.update(), gr.update(), gr.update(visible=False)
                session.run = BatchRun(
                    runtime,
                    task_id,
                    texts,
                    model_value,
                    fast_cpu=fast_cpu,
                    options=options,
                    cancel=session.cancel,
                    load_progress=progress_reporter(gr_progress),
                    file_columns=table.columns,
                )
                last = 0.0
                for event in session.run:
                    session.results.update(event.results)
                    for note in event.notes:
                        gr.Warning(note)
                    if event.state is RunState.RUNNING and time.monotonic() - last < UPDATE_EVERY_S:
                        continue
                    last = time.monotonic()
                    if event.state is RunState.RUNNING:
                        yield _view(session, event), results_frame(session), _chart(session), gr.update()
                    else:
                        path = export(session, fmt_value, folder)
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

        def on_cancel(current: Session | None) -> str:
            if not isinstance(current, Session) or not current.running:
                return "Nothing is running."
            current.cancel.set()
            return "Cancelling after the batch in flight; the rows done so far are kept…"

        def on_format(fmt_value: str, current: Session | None) -> Any:
            if not isinstance(current, Session) or current.run is None or not current.results:
                return gr.update()
            try:
                return gr.update(value=str(export(current, fmt_value, folder)), visible=True)
            except Exception as exc:
                raise user_error(exc) from None

        private: dict[str, Any] = {"api_visibility": "private"}
        upload.change(on_upload, inputs=upload, outputs=[state, info, preview, column, download], **private)
        task.change(
            lambda task_id: (
                model_update(runtime, task_id, None, local),
                gr.update(visible=shows_column(task_id)),
                *(gr.update(visible=owner == task_id) for owner in option_groups),
            ),
            inputs=task,
            outputs=[model, column, *option_groups.values()],
            **private,
        )
        tab.select(
            lambda task_id, current: (
                model_update(runtime, task_id, current, local),
                gr.update(visible=runtime.device == "cpu"),
            ),
            inputs=[task, model],
            outputs=[model, fast],
            **private,
        )
        running = run.click(
            on_run,
            inputs=[state, column, task, model, fast, fmt, *option_boxes],
            outputs=[progress, results, chart, download],
            concurrency_id=BATCH_QUEUE,
            concurrency_limit=1,
            **private,
        )
        if getattr(context, "status", None) is not None:
            running.then(
                lambda current: status_text(runtime, current.run.model if _ran(current) else ""),
                inputs=state,
                outputs=context.status,
                queue=False,
                **private,
            )
        cancel.click(on_cancel, inputs=state, outputs=progress, queue=False, **private)
        fmt.change(on_format, inputs=[fmt, state], outputs=download, **private)


def _ran(current: Any) -> bool:
    return isinstance(current, Session) and current.run is not None


def _view(session: Session, event: BatchProgress) -> str:
    line = f"**{event.line()}** — {session.run.model if session.run else ''}"
    if event.state is RunState.CANCELLED:
        line += f"\n\nCancelled: the {len(session.results):,} rows done are kept; the export marks the others as not analysed."
    return line


def _chart(session: Session) -> Any:
    counts = chart_counts(session)
    if counts is None or session.run is None:
        return gr.update(visible=False)
    title = session.run.spec.chart_title or "value"
    what = "Entities by type" if title == "entity type" else "Rows by label"
    return gr.update(value=chart_html(counts, what, title), visible=True)
