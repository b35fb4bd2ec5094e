"""The Models tab: every model with its status, downloads with progress, verify/repair/delete,
import from a folder, custom Hub ids, and the models folder (Storage). Offline mode is in Settings.

Built on the main thread inside ``build_app``, only in the app on this computer
(``context.local``): LAN visitors get no tab, and none of these events is part
of the HTTP API. Handlers run on Gradio's workers and call the door's
ModelStore; downloads report to ``gr.Progress`` from the handler's own thread.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import gradio as gr

from desktop.engine import inventory
from desktop.errors import UserError
from desktop.fmt import human_size
from desktop.models import catalog, offline_mode, storage
from desktop.models.transfers import DownloadCancelled, free_bytes
from desktop.tasks import TASKS, known_models
from desktop.tasks.spec import ModelRef
from desktop.ui import native
from desktop.ui.handlers import error_text, message_box, progress_reporter

HEADERS = ["Model", "Name", "Status", "Size", "Task", "Last use", "Source"]
WIDTHS = ["29%", "17%", "11%", "8%", "14%", "9%", "12%"]
MOVE, LEAVE = "Move the models there", "Leave them where they are (the new folder starts empty)"
CONFIRM_DELETE = (
    "(name) => (name && confirm('Delete ' + name + ' from this computer? "
    "It will be downloaded (or imported) again when needed.')) ? name : null"
)


def _ago(when: float | None) -> str:
    if not when:
        return "never"
    seconds = time.time() - when
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{int(seconds // 60)} min ago"
    if seconds < 86400:
        return f"{int(seconds // 3600)} h ago"
    return time.strftime("%Y-%m-%d", time.localtime(when))


def _task_titles(tasks: tuple[str, ...]) -> str:
    return ", ".join(TASKS[t].title if t in TASKS else (t or "—") for t in tasks)


def _size(entry: inventory.ModelEntry, known: dict[str, ModelRef]) -> str:
    """What the model uses on disk; before it is downloaded, what it will take (as the task tabs'
    lists say it: "about 669 MB"); "—" when nobody knows yet."""
    if entry.size:
        return human_size(entry.size)
    ref = known.get(entry.id)
    return f"about {human_size(ref.size_mb * 1_000_000)}" if ref is not None and ref.size_mb else "—"


def table_rows(door: Any) -> list[list[str]]:
    """The rows of the model table, as the disk stands now."""
    known = known_models()
    return [
        [
            e.id,
            e.label if e.label != e.id else "",
            e.status,
            _size(e, known),
            _task_titles(e.tasks),
            _ago(e.last_used),
            e.source,
        ]
        for e in inventory.entries(door.store)
    ]


def summary(door: Any) -> str:
    """Where the models are, how much they use, how much is free, online or not."""
    store = door.store
    offline = "**on**: nothing is downloaded" if offline_mode() else "off"
    note = catalog.check(store.root)  # a damaged model list, kept aside
    return (
        f"Models folder: `{store.root}` · models use **{human_size(inventory.cache_size(store))}** · "
        f"**{human_size(free_bytes(store.root))}** free on this disk · Offline mode: {offline}"
    ) + (f"\n\n⚠️ {note}" if note else "")


def _refresh(door: Any, choice: str | None = None) -> tuple[Any, ...]:
    """The table, the summary and the Model list; ``choice`` (while listed) is picked in it, or with
    no ``choice`` the person's pick stays: nothing is ever picked for them."""
    rows = table_rows(door)
    ids = [row[0] for row in rows]
    picked = {} if choice is None else {"value": choice if choice in ids else None}
    return gr.update(value=rows), summary(door), gr.update(choices=ids, **picked)


def _ref(door: Any, name: str | None) -> ModelRef | None:
    """The Hub reference for a row id, None for an imported model; UserError when nothing is chosen."""
    if not name:
        raise UserError("Choose a model in the list first.")
    return inventory.ref_for(name, door.store.root)


def _run(door: Any, choice: str | None, action: Any) -> tuple[Any, ...]:
    """Call ``action`` and return (message box, table, summary, dropdown): its words, or the error's
    in the tab's message box, where they stay until the next action."""
    try:
        message, failed = action(), False
    except DownloadCancelled as exc:
        message, failed = str(exc), False
    except Exception as exc:
        message, failed = error_text(exc), True
    return (message_box(message, failed), *_refresh(door, None if failed else choice))


def _download(door: Any, name: str | None, progress: Any) -> str:
    ref = _ref(door, name)
    if ref is None:
        return f"{name} was imported from a folder: it is already on this computer."
    report = progress_reporter(progress)
    door.store.ensure(ref, report)
    return f"{ref.display} is ready ({human_size(door.store.size_on_disk(ref))}): use it in its task's tab."


def _verify(door: Any, name: str | None) -> str:
    ref = _ref(door, name)
    root = door.store.root
    if ref is None:
        problems = catalog.verify_imported(name or "", root)
    else:
        if door.store.manifest(ref) is None:
            return f"{ref.display} is {door.store.status(ref)}: download it first."
        problems = door.store.verify(ref)
    if not problems:
        return f"{name}: every file is intact."
    fix = "import it again from its folder" if ref is None else "click Repair to download them again"
    lines = "\n".join(f"- {p.file}: {p.issue}" for p in problems)
    return f"{name} is damaged ({len(problems)} file(s)); {fix}:\n{lines}"


def _repair(door: Any, name: str | None, progress: Any) -> str:
    ref = _ref(door, name)
    if ref is None:
        raise UserError(f"{name} was imported from a folder: import it again to repair it.")
    repaired = door.store.repair(ref, progress_reporter(progress))
    if not repaired:
        return f"{ref.display}: nothing to repair, every file is intact."
    return f"{ref.display} is repaired: {len(repaired)} file(s) downloaded again."


def _delete(door: Any, name: str | None) -> str:
    if name is None:  # the confirmation was declined
        return "Nothing was deleted."
    root = door.store.root
    if name in catalog.imported(root):
        freed = catalog.remove_imported(name, root)
    else:
        ref = _ref(door, name)
        assert ref is not None
        freed = door.store.remove(ref)
        catalog.forget(ref.repo, root)
    return f"Deleted {name} (freed {human_size(freed)})."


def _add_hub_model(door: Any, repo: str, task: str | None, progress: Any) -> str:
    from desktop.models import looks_like_hub_id
    from desktop.tasks import known_models

    repo = (repo or "").strip()
    if not looks_like_hub_id(repo) or "/" not in repo:
        raise UserError(f"{repo!r} is not a Hub model id: it looks like owner/name.")
    if not task:
        raise UserError("Choose the task the model is for.")
    ref = known_models().get(repo) or ModelRef(repo, "main")
    inventory.install(door.store, ref, task, progress_reporter(progress))
    return f"{repo} is ready for {TASKS[task].title}: pick {repo} in that task's Model list."


def _import(door: Any, folder: str, task: str | None, name: str, progress: Any) -> str:
    if not (folder or "").strip():
        raise UserError("Type the path of the model folder to import.")
    if not task:
        raise UserError("Choose the task the model is for.")
    root = door.store.root
    imported, _target = inventory.import_folder(
        Path(folder.strip()), task, (name or "").strip() or None, root, progress_reporter(progress)
    )
    size = sum(catalog.imported(root)[imported].get("files", {}).values())
    return (
        f"Imported {imported} for {TASKS[task].title} ({human_size(size)}). "
        f"Pick {imported} in that task's Model list to use it."
    )


def _change_folder(door: Any, folder: str, how: str, progress: Any) -> str:
    if not (folder or "").strip():
        raise UserError("Type the path of the folder to keep models in.")
    change = storage.change_models_dir(
        Path(folder.strip()), move=how != LEAVE, store=door.store, progress=progress_reporter(progress)
    )
    return change.sentence()


def _unload(door: Any) -> str:
    """Free memory: every model leaves memory (the engine process starts afresh: its memory goes back
    to the system); each loads again the next time a task needs it."""
    held = door.status.loaded
    door.unload()
    if not held:
        return "No model is in memory."
    return (
        f"{held} model{'s' if held != 1 else ''} unloaded: their memory is back with the system. "
        "Each loads again the next time a task needs it."
    )


def build(door: Any, context: Any) -> None:
    """Add the Models tab (the app on this computer only)."""
    if not getattr(context, "local", True):
        return
    task_choices = [(spec.title, spec.id) for spec in TASKS.values()]
    with gr.Tab("Models", id="models") as tab:
        gr.Markdown(
            "Models download once, the first time a task needs them, and then work offline. "
            "Pick a model in the list (or click its row) to download, verify, repair or delete it."
        )
        info = gr.Markdown(elem_id="models-summary")
        table = gr.Dataframe(
            headers=HEADERS, interactive=False, wrap=True, column_widths=WIDTHS, elem_id="models-table"
        )
        with gr.Row():
            choice = gr.Dropdown(label="Model", choices=[], elem_id="models-choice", scale=3)
        with gr.Row():
            download = gr.Button("Download", variant="primary", elem_id="models-download")
            verify = gr.Button("Verify", elem_id="models-verify")
            repair = gr.Button("Repair", elem_id="models-repair")
            delete = gr.Button("Delete", variant="stop", elem_id="models-delete")
            cancel = gr.Button("Cancel download", elem_id="models-cancel")
            unload = gr.Button("Free memory", elem_id="models-unload")
        # The one message box (and progress area): the last action's words, or its error's, until the next.
        result = gr.HTML("", elem_id="models-result", min_height=60)
        with gr.Accordion("Add a Hub model", open=False):
            hub_id = gr.Textbox(label="Hub model id", placeholder="owner/name", elem_id="models-hub-id")
            hub_task = gr.Dropdown(task_choices, label="For the task", elem_id="models-hub-task")
            add = gr.Button("Add and download", elem_id="models-add")
        with gr.Accordion("Import from folder", open=False):
            gr.Markdown(
                "A model folder copied from another computer (for example on a USB stick) is copied in."
            )
            folder = gr.Textbox(
                label="Model folder", placeholder="/media/usb/my-model", elem_id="models-import-path"
            )
            native.choose_button(folder)
            import_task = gr.Dropdown(task_choices, label="For the task", elem_id="models-import-task")
            import_name = gr.Textbox(label="Name (optional)", elem_id="models-import-name")
            do_import = gr.Button("Import", elem_id="models-import")
        with gr.Accordion("Storage", open=False):
            models_dir = gr.Textbox(label="Models folder", elem_id="models-dir")
            native.choose_button(models_dir)
            how = gr.Radio([MOVE, LEAVE], value=MOVE, label="The models already downloaded")
            change = gr.Button("Change folder", elem_id="models-change-dir")

    outputs = [result, table, info, choice]
    private: dict[str, Any] = {"api_visibility": "private"}
    shown: dict[str, Any] = {**private, "show_progress_on": [result]}  # the bar under the buttons only

    def action(fn: Any, with_progress: bool = False) -> Any:
        if with_progress:

            def handler(name: str | None, progress: Any = gr.Progress()) -> tuple[Any, ...]:
                return _run(door, name, lambda: fn(door, name, progress))

        else:

            def handler(name: str | None) -> tuple[Any, ...]:  # type: ignore[misc]
                return _run(door, name, lambda: fn(door, name))

        return handler

    def load() -> tuple[Any, ...]:
        return (*_refresh(door), str(door.store.root))

    tab.select(load, outputs=[table, info, choice, models_dir], **private)

    def pick(evt: gr.SelectData) -> str | None:
        return evt.row_value[0] if evt.row_value else None

    table.select(pick, None, choice, **private)
    refresh = getattr(context, "after_models_change", lambda event: event)

    def act(trigger: Any, handler: Any, inputs: Any, js: str | None = None) -> Any:
        """``handler`` on ``trigger``, after the message box is emptied: its progress bar and then its
        words are the only ones there."""
        cleared = trigger(lambda: "", None, result, queue=False, **private)
        return cleared.then(handler, inputs, outputs, js=js, **shown)

    refresh(act(download.click, action(_download, True), choice))
    act(verify.click, action(_verify), choice)
    refresh(act(repair.click, action(_repair, True), choice))
    refresh(act(delete.click, action(_delete), choice, js=CONFIRM_DELETE))
    cancel.click(
        lambda: message_box("Cancelling…" if door.store.cancel() else "No download is running."),
        None,
        result,
        queue=False,
        **private,
    )

    unload.click(lambda: message_box(_unload(door)), None, result, **private)

    def add_handler(repo: str, task: str | None, progress: Any = gr.Progress()) -> tuple[Any, ...]:
        return _run(door, repo, lambda: _add_hub_model(door, repo, task, progress))

    def import_handler(
        path: str, task: str | None, name: str, progress: Any = gr.Progress()
    ) -> tuple[Any, ...]:
        return _run(door, name, lambda: _import(door, path, task, name, progress))

    def change_handler(path: str, choice_how: str, progress: Any = gr.Progress()) -> tuple[Any, ...]:
        done = _run(door, None, lambda: _change_folder(door, path, choice_how, progress))
        door.unload()  # models load again from the folder where they are now
        return done

    # The task tabs' Model lists follow every change here (no page reload needed).
    refresh(act(add.click, add_handler, [hub_id, hub_task]))
    refresh(act(do_import.click, import_handler, [folder, import_task, import_name]))
    refresh(
        act(change.click, change_handler, [models_dir, how]).then(
            lambda: str(door.store.root), None, models_dir, **private
        )
    )
