"""``pipedesk models ...``: list, download, import, remove, verify and move models from a terminal.

Each command runs on the main thread and prints for people (``--json`` for
scripts). Downloads draw a progress bar on stderr; Ctrl+C cancels one and
leaves nothing half-installed. User errors exit with code 2 (see desktop.cli);
``verify`` exits 1 when it finds damaged files it did not repair.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from desktop.errors import ModelError, UserError
from desktop.fmt import human_size
from desktop.models.transfers import DownloadCancelled, free_bytes


def _store():
    from desktop.models import ModelStore, catalog

    store = ModelStore()
    note = catalog.check(store.root)  # a damaged model list, kept aside: say so on every command
    if note:
        print(f"pipedesk: note: {note}", file=sys.stderr)
    return store


def _progress():
    from desktop.cli.common import terminal_progress

    return terminal_progress()


def _ago(when: float | None) -> str:
    if not when:
        return "never"
    seconds = max(0.0, time.time() - when)
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "min")):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count > 1 and unit != 'min' else ''} ago"
    return "just now"


def cmd_list(args: argparse.Namespace) -> int:
    """Every known model with its status, size, task and last use."""
    from desktop.engine import inventory

    store = _store()
    rows = inventory.entries(store)
    if args.json:
        print(json.dumps({"folder": str(store.root), "models": [r.to_json() for r in rows]}, indent=2))
        return 0
    width = max(len(r.id) for r in rows) if rows else 10
    print(f"{'MODEL':<{width}}  {'TASK':<18}  {'STATUS':<15}  {'SIZE':>9}  LAST USED")
    for r in rows:
        size = human_size(r.size) if r.size else "-"
        print(f"{r.id:<{width}}  {', '.join(r.tasks):<18}  {r.status:<15}  {size:>9}  {_ago(r.last_used)}")
    print(
        f"\nModels folder: {store.root}  ·  uses {human_size(inventory.cache_size(store))}"
        f"  ·  {human_size(free_bytes(store.root))} free"
    )
    return 0


def _hub_ref(name: str):
    from desktop.engine import inventory
    from desktop.models import catalog

    ref = inventory.ref_for(name)
    if ref is None:
        if name in catalog.imported():
            raise UserError(f"{name} was imported from a folder: it is already on this computer.")
        raise ModelError(f"{name!r} is neither a known model nor a Hub model id (like owner/name).")
    return ref


def cmd_download(args: argparse.Namespace) -> int:
    """Download a model (a task model's label or Hub id, or any Hub id) so it works offline."""
    from desktop.engine import inventory
    from desktop.tasks import get

    task = get(args.task).id if args.task else None
    ref = _hub_ref(args.id)
    store = _store()
    try:
        folder = inventory.install(store, ref, task, _progress())
    except DownloadCancelled as exc:
        print(exc, file=sys.stderr)
        return 130
    print(f"{ref.display} is ready ({human_size(store.size_on_disk(ref))}) in {folder}")
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    """Copy a model folder (e.g. from a USB stick) into Pipedesk under a name."""
    from desktop.engine import inventory
    from desktop.tasks import get

    task = get(args.task).id
    name, folder = inventory.import_folder(Path(args.path), task, args.name, progress=_progress())
    print(f"Imported {name} for {task} into {folder}. Use it with: {run_hint(task, name, folder)}")
    return 0


def run_hint(task: str, name: str, folder: Path) -> str:
    """The ``pipedesk run`` line that uses the model ``name`` (of ``folder``) for ``task``: a text, a
    file (a recording, a photo) or, for an image classifier in a text-or-image task, ``--image``."""
    from desktop.tasks import TASKS

    spec = TASKS[task]
    if {"text", "image"} <= set(spec.inputs):
        what = "--image PHOTO" if _is_image_model(folder) else "TEXT"
    else:
        what = "FILE" if spec.folder_kind else "TEXT"
    return f"pipedesk run {task} {what} --model {name!r}"


def cmd_remove(args: argparse.Namespace) -> int:
    """Delete a downloaded or imported model from this computer."""
    from desktop.models import MISSING, catalog

    if args.id in catalog.imported():
        freed = catalog.remove_imported(args.id)
    else:
        ref = _hub_ref(args.id)
        store = _store()
        custom = ref.repo in catalog.custom()
        if store.status(ref) == MISSING and not custom:
            raise UserError(f"{ref.display} is not downloaded: there is nothing to remove.")
        freed = store.remove(ref)
        catalog.forget(ref.repo)
    print(f"Removed {args.id} (freed {human_size(freed)}).")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Check every file of one model (or all) and, with --repair, fetch damaged ones again."""
    from desktop.engine import inventory
    from desktop.models import MISSING, READY, catalog

    store = _store()
    if args.id:
        names = [args.id]
    else:
        names = [e.id for e in inventory.entries(store) if e.status not in (MISSING,)]
        if not names:
            print("No models are downloaded yet.")
            return 0
    damaged = 0
    for name in names:
        if name in catalog.imported():
            problems = catalog.verify_imported(name)
            if problems and args.repair:
                print(f"{name}: cannot be repaired here: import it again from its folder.", file=sys.stderr)
        else:
            ref = _hub_ref(name)
            if store.manifest(ref) is None:
                if not args.repair:
                    print(f"{name}: {store.status(ref)} (run: pipedesk models download {name})")
                    damaged += store.status(ref) != MISSING
                    continue
                store.ensure(ref, _progress())
                problems = []
            else:
                problems = store.verify(ref)
                if problems and args.repair:
                    store.repair(ref, _progress())
                    print(f"{name}: repaired {len(problems)} file(s)")
                    problems = store.verify(ref)
        if problems:
            damaged += 1
            print(f"{name}: damaged")
            for problem in problems:
                print(f"  {problem}")
        else:
            print(f"{name}: {READY}")
    return 1 if damaged else 0


def cmd_path(args: argparse.Namespace) -> int:
    """Print the models folder."""
    print(_store().root)
    return 0


def cmd_move(args: argparse.Namespace) -> int:
    """Use another models folder, moving the models there (or leaving them with --leave)."""
    from desktop.models import storage

    change = storage.change_models_dir(Path(args.folder), move=not args.leave, progress=_progress())
    print(change.sentence())
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``pipedesk models ...`` to the main parser."""
    from desktop.tasks import TASKS

    models = subparsers.add_parser("models", help="list, download, import, verify, move or remove models")
    sub = models.add_subparsers(title="model commands", metavar="COMMAND", required=True)
    tasks = list(TASKS)

    p = sub.add_parser("list", help="every known model with its status, size, task and last use")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("download", help="download a model now, so it works offline")
    p.add_argument(
        "id", metavar="ID", help="a model label, a task model's Hub id, or any Hub id (owner/name)"
    )
    p.add_argument("--task", choices=tasks, help="check that the model fits this task")
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("import", help="copy a model folder (e.g. from a USB stick) into Pipedesk")
    p.add_argument("path", metavar="PATH", help="a folder written by save_pretrained, or a Hub cache folder")
    p.add_argument("--task", required=True, choices=tasks, help="the task the model is for")
    p.add_argument("--name", help="the name to use it by (default: the folder's name)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("remove", help="delete a downloaded or imported model")
    p.add_argument("id", metavar="ID")
    p.set_defaults(func=cmd_remove)

    p = sub.add_parser("verify", help="check model files (sizes and sha256); --repair fetches bad ones")
    p.add_argument("id", metavar="ID", nargs="?", help="one model (default: every downloaded one)")
    p.add_argument("--repair", action="store_true", help="download missing or damaged files again")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("path", help="print the models folder")
    p.set_defaults(func=cmd_path)

    p = sub.add_parser("move", help="use another models folder, moving the models there")
    p.add_argument("folder", metavar="FOLDER")
    p.add_argument("--leave", action="store_true", help="leave the current models where they are")
    p.set_defaults(func=cmd_move)


def _is_image_model(folder: Path) -> bool:
    """True for an image classifier (its hint then says --image PHOTO, not TEXT)."""
    from desktop.errors import ModelError
    from desktop.models.compat import check_fits

    try:
        check_fits("image-classification", folder, folder.name)
        return True
    except ModelError:
        return False
