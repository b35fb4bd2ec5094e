"""The Batch tab: a whole file, a handful of photos or recordings, or (on this computer) a folder of
them, through a task, with live progress, a chart and export.

Built on the main thread with the rest of the Blocks; its handlers run on
Gradio's worker threads. Each browser session's file and results live in a
:class:`desktop.ui.batch_view.Session` held in that session's own ``gr.State`` (Gradio keeps State
per browser session, so the owner and each LAN visitor have their own; the
Cancel button reaches the run's cancel flag through it). A run is a
generator: every half second it yields the progress line, the results table
(first rows, input order, filling in: the text beside its result columns, the note last),
the chart and, at the end, the export to download. Cancel stops after the batch in flight and keeps
what is done. Runs share one queue (``concurrency_id="batch"``); the model
calls inside go through the engine's scheduler batch by batch, so the other tabs
still answer while a file is analysed.

Files are read by :mod:`desktop.files` within the door's limits (a visitor's are smaller); only
the owner's app offers a folder on this computer and Parquet files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import gradio as gr
import pandas as pd

from desktop.batch.rows import file_values
from desktop.engine.client import Door
from desktop.engine.filerun import BatchProgress, RunState, task_spec
from desktop.errors import UserError
from desktop.files.audio import AUDIO_EXTENSIONS
from desktop.files.images import IMAGE_EXTENSIONS
from desktop.files.reader import FOLDER_FILES, read_folder
from desktop.files.table import Table
from desktop.tasks import TASKS
from desktop.ui import model_lists, native, uploads
from desktop.ui.batch_view import (
    EXPORTS,
    Session,
    chart_counts,
    chart_html,
    check_rows_fit,
    column_widths,
    current_session,
    export,
    file_tasks,
    not_handed_in,
    read_any_folder,
    read_handed_in,
    results_frame,
    shows_column,
    taken_extensions,
    task_options,
)
from desktop.ui.handlers import error_text, message_box, output_folder, progress_reporter, status_text
from desktop.ui.widgets import option_controls

UPDATE_EVERY_S = 0.5
BATCH_QUEUE = "batch"
EMPTY = "Upload a file (or photos, or recordings) to see its first rows."


def model_update(door: Door, task: str, current: str | None, local: bool) -> dict[str, Any]:
    """The Model list for ``task`` on files: the task's models with their states, imported ones too."""
    return model_lists.update(task_spec(task), door.store, current, local=local, task=task)


def described(table: Table, source: Path | None = None) -> tuple[str, Any, Any, Any]:
    """The info line, the preview, the column picker and the sheet picker for ``table``."""
    where = f"{source}" if source is not None else table.name
    if table.holds == "text":
        lines = [f"**{where}**: {len(table.rows):,} rows, {len(table.columns)} columns."]
    else:
        count = f"{len(table.rows):,} {FOLDER_FILES[table.holds]}"
        lines = [f"**{where}**: {count}." if where != count else f"**{count}** handed in."]
    lines += [f"⚠ {w}" for w in table.warnings]
    guess = "file" if table.holds != "text" else None
    if table.holds == "text":
        try:
            guess = table.guess_column()
        except UserError as exc:  # a file of numbers: nothing is preselected, and it says why
            lines.append(f"⚠ {exc}")
    frame = pd.DataFrame(table.preview(), columns=table.columns)
    picker = gr.update(choices=table.columns, value=guess, visible=table.holds == "text")
    sheets = gr.update(choices=table.sheets, value=table.sheet, visible=len(table.sheets) > 1)
    return "\n\n".join(lines), frame, picker, sheets


# --- the tab -----------------------------------------------------------------------------


def build(door: Door, context: Any) -> None:
    """Add the Batch tab (inside the app's gr.Tabs)."""
    from desktop import settings

    local = getattr(context, "local", True)
    folder = output_folder(local)
    first = model_update(door, "sentiment", None, local)
    with gr.Tab("Batch", id="batch") as tab:
        gr.Markdown(
            "Analyse a whole file (CSV, TSV, XLSX, JSONL, or TXT with one text per line"
            + (", Parquet" if local else "")
            + "), or photos, or recordings"
            + (" — or a whole folder of them on this computer" if local else " (up to 10 at a time)")
            + ". Results keep the order of the rows; download them with the result columns appended.",
            elem_classes="task-description",
        )
        state = gr.State(None)
        with gr.Row(equal_height=False):
            with gr.Column(scale=1):
                upload = gr.File(
                    label="File, photos or recordings",
                    file_count="multiple",
                    file_types=taken_extensions(local),
                    type="filepath",
                    elem_id="batch-file",
                    elem_classes=uploads.watched("batch" if local else "batch-lan"),
                )
                refused = gr.Textbox(label="Refused file", elem_classes="pd-hidden")
                refuse = gr.Button("Refuse", elem_id="refuse-batch", elem_classes="pd-hidden")
                with gr.Row(visible=local):
                    folder_box = gr.Textbox(
                        label="Or a folder on this computer",
                        placeholder="A folder of photos or recordings (its subfolders too)",
                        scale=3,
                        elem_id="batch-folder",
                    )
                    read_folder_button = gr.Button("Read folder", scale=1, elem_id="batch-folder-read")
                    chose_folder = native.choose_button(folder_box, "folder", local)
                sheet = gr.Dropdown(label="Sheet", choices=[], visible=False, elem_id="batch-sheet")
                column = gr.Dropdown(
                    label="Text column", choices=[], interactive=True, elem_id="batch-column"
                )
                task = gr.Dropdown(
                    label="Task", choices=file_tasks(), value="sentiment", elem_id="batch-task"
                )
                option_keys, option_boxes, option_groups = option_controls(
                    [TASKS[task_id] for _title, task_id in file_tasks()],
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
                info = gr.Markdown(EMPTY, elem_id="batch-info")
                preview = gr.Dataframe(
                    label="First rows", interactive=False, wrap=True, elem_id="batch-preview"
                )
        progress = gr.Markdown("", elem_id="batch-progress")
        # The tab's message box: the last error (or the run's notes) in words, until the next action.
        message = gr.HTML("", elem_id="batch-message")
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

        shown_file = [state, info, preview, column, sheet, download, message]

        def no_file(error: Exception | None = None) -> tuple[Any, ...]:
            """Nothing handed in (or what was could not be read: ``error``, in the message box)."""
            empty = gr.update(choices=[], value=None)
            words = message_box(error_text(error), failed=True) if error else ""
            return None, EMPTY, None, empty, gr.update(visible=False), gr.update(visible=False), words

        def on_upload(paths: list[str] | str | None) -> tuple[Any, ...]:
            paths = [paths] if isinstance(paths, str) else list(paths or [])
            if not paths:
                return *no_file(), gr.update()
            try:
                table = read_handed_in(paths, door, local)
            except Exception as exc:
                return *no_file(exc), None  # the box is emptied: the next file starts afresh
            upload_path = paths[0] if table.holds == "text" else None  # its warnings: in the info line
            session = Session(table=table, upload=upload_path)
            return session, *described(table), gr.update(visible=False), "", gr.update()

        def on_sheet(chosen: str | None, current: Session | None) -> tuple[Any, ...]:
            if (
                not isinstance(current, Session)
                or current.upload is None
                or chosen in (None, current.table.sheet)
            ):
                return (gr.update(),) * len(shown_file)
            try:
                table = read_handed_in([current.upload], door, local, sheet=chosen)
            except Exception as exc:
                return (*(gr.update(),) * (len(shown_file) - 1), message_box(error_text(exc), failed=True))
            session = Session(table=table, upload=current.upload)
            return session, *described(table), gr.update(visible=False), ""

        def on_folder(text: str) -> tuple[Any, ...]:
            try:
                table, source = read_any_folder(text)
            except Exception as exc:
                return no_file(exc)
            session = Session(table=table, source=source)
            return session, *described(table, source), gr.update(visible=False), ""

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
                session = current_session(current)
                spec = task_spec(task_id)
                options = spec.check_options(task_options(task_id, option_keys, option_values))
                _fit_folder(session, task_id)
                table = session.table
                check_rows_fit(table, task_id)
                if spec.reads_rows:
                    column_value = spec.columns_read(table.columns, options)[0]
                elif table.holds != "text":
                    column_value = "file"
                elif not column_value:
                    raise UserError("Choose the column that holds the texts.")
                session.column = table.columns[table.column_index(column_value)]
                if session.running:
                    raise UserError("This file is already being analysed: wait for it, or cancel it first.")
                session.task, session.results, session.cancel = task_id, {}, threading.Event()
                session.running = mine = True
                texts = file_values(table, spec, session.column)
                yield "Loading the model…", gr.update(), gr.update(), gr.update(visible=False), ""
                session.run = door.run_file(
                    task_id,
                    texts,
                    model_value,
                    fast_cpu=fast_cpu,
                    options=options,
                    cancel=session.cancel,
                    load_progress=progress_reporter(gr_progress),
                    file_columns=table.columns,
                    holds=table.holds,
                )
                last, notes = 0.0, []
                for event in session.run:
                    session.results.update(event.results)
                    notes += event.notes
                    words = message_box("\n".join(f"ℹ️ {note}" for note in notes))
                    if event.state is RunState.RUNNING and time.monotonic() - last < UPDATE_EVERY_S:
                        continue
                    last = time.monotonic()
                    if event.state is RunState.RUNNING:
                        yield _view(session, event), _results(session), _chart(session), gr.update(), words
                    else:
                        path = export(session, fmt_value, folder)
                        shown = gr.update(value=str(path), visible=True)
                        yield _view(session, event), _results(session), _chart(session), shown, words
            except Exception as exc:  # in words, in place of the progress line of an earlier run
                yield "", gr.update(), gr.update(), gr.update(), message_box(error_text(exc), failed=True)
            finally:
                if mine and session is not None:
                    session.running = False

        def on_cancel(current: Session | None) -> str:
            if not isinstance(current, Session) or not current.running:
                return "Nothing is running."
            current.cancel.set()
            return "Cancelling after the batch in flight; the rows done so far are kept…"

        def on_format(fmt_value: str, current: Session | None) -> tuple[Any, Any]:
            if not isinstance(current, Session) or current.run is None or not current.results:
                return gr.update(), gr.update()
            try:
                return gr.update(value=str(export(current, fmt_value, folder)), visible=True), ""
            except Exception as exc:
                return gr.update(), message_box(error_text(exc), failed=True)

        def on_task(task_id: str, current: Session | None) -> tuple[Any, ...]:
            texts = not isinstance(current, Session) or current.table.holds == "text"
            return (
                model_update(door, task_id, None, local),
                gr.update(visible=shows_column(task_id) and texts),
                *(gr.update(visible=owner == task_id) for owner in option_groups),
            )

        private: dict[str, Any] = {"api_visibility": "private"}
        refuse.click(
            lambda name: (*no_file(not_handed_in(name or "This file")), None),
            inputs=refused,
            outputs=[*shown_file, upload],
            js=uploads.REFUSED_JS,
            queue=False,
            **private,
        )
        # Not .change: emptying the box after a refusal must not wipe the refusal's words.
        for handed in (upload.upload, upload.delete, upload.clear):
            handed(on_upload, inputs=upload, outputs=[*shown_file, upload], **private)
        sheet.input(on_sheet, inputs=[sheet, state], outputs=shown_file, **private)
        if local:  # visitors' app: no handler that reads a folder of this computer, even by number
            read_folder_button.click(on_folder, inputs=folder_box, outputs=shown_file, **private)
            folder_box.submit(on_folder, inputs=folder_box, outputs=shown_file, **private)
            native.then_read(chose_folder, on_folder, folder_box, shown_file)  # read at once when chosen
        task.change(
            on_task, inputs=[task, state], outputs=[model, column, *option_groups.values()], **private
        )
        tab.select(
            lambda task_id, current: (
                model_update(door, task_id, current, local),
                gr.update(visible=door.device == "cpu", value=settings.load().fast_cpu),
            ),
            inputs=[task, model],
            outputs=[model, fast],
            **private,
        )
        running = run.click(
            on_run,
            inputs=[state, column, task, model, fast, fmt, *option_boxes],
            outputs=[progress, results, chart, download, message],
            show_progress_on=[results],  # one progress area (loading the model): over the results
            concurrency_id=BATCH_QUEUE,
            concurrency_limit=1,
            **private,
        )
        if getattr(context, "status", None) is not None:
            running.then(
                lambda current: status_text(door, current.run.model if _ran(current) else ""),
                inputs=state,
                outputs=context.status,
                queue=False,
                **private,
            )
        cancel.click(on_cancel, inputs=state, outputs=progress, queue=False, **private)
        fmt.change(on_format, inputs=[fmt, state], outputs=[download, message], **private)


def _fit_folder(session: Session, task_id: str) -> None:
    """A folder holding photos and recordings: read again for the kind the task takes."""
    kind = task_spec(task_id).folder_kind
    if session.source is None or kind is None or kind == session.table.holds:
        return
    extensions = IMAGE_EXTENSIONS if kind == "image" else AUDIO_EXTENSIONS
    if any(p.is_file() and p.suffix.lower() in extensions for p in session.source.rglob("*")):
        session.table = read_folder(session.source, extensions, FOLDER_FILES[kind])
        session.table.holds = kind


def _results(session: Session) -> Any:
    frame = results_frame(session)
    return gr.update(value=frame, column_widths=column_widths(frame))


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
    what = {"entity type": "Entities by type", "object": "Objects by label"}.get(title, "Rows by label")
    return gr.update(value=chart_html(counts, what, title), visible=True)
