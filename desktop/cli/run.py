"""``pipedesk run TASK INPUT``: one prediction, printed (plain text, or JSON with --json)."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from desktop.cli.common import add_device, add_task_options, terminal_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and one sub-command per task (with that task's options)."""
    from desktop.tasks import TASKS

    run = subparsers.add_parser("run", help="run one task once and print the result")
    tasks = run.add_subparsers(title="tasks", metavar="TASK", required=True)
    for spec in TASKS.values():
        task = tasks.add_parser(spec.id, help=spec.title, description=spec.description)
        text_or_image = {"text", "image"} <= set(spec.inputs)
        task.add_argument(
            "input",
            metavar="INPUT",
            nargs="?" if text_or_image else None,
            help="the text (- reads stdin); a photo goes with --image"
            if text_or_image
            else "the text, or the file for tasks that take one; - reads stdin",
        )
        if text_or_image:
            task.add_argument("--image", metavar="PHOTO", default=None, help="a photo instead of a text")
        task.add_argument("--model", default=None, help="a model label, Hub id, imported name or folder")
        add_task_options(task, spec)
        task.add_argument("--json", action="store_true", help="print the result as JSON")
        if spec.export_formats:
            task.add_argument(
                "--format",
                choices=spec.export_formats,
                default=None,
                help="print the result as this kind of file (what the tab offers to download)",
            )
        add_device(task)
        task.set_defaults(func=cmd_run, task=spec.id)


def cmd_run(args: argparse.Namespace) -> int:
    """One prediction: the result on stdout (plain text, or JSON with --json)."""
    from desktop import logs
    from desktop.engine.start import open_door
    from desktop.tasks import get

    logs.setup()
    spec = get(args.task)
    inputs = _inputs(spec, args)
    options = [option.check(getattr(args, option.name), option.flag) for option in spec.options]
    door = open_door(args.device)
    call = [*(inputs.get(name) for name in spec.inputs), args.model, *options]
    result = door.predict(spec, *call, progress=terminal_progress())
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    if getattr(args, "format", None):
        sys.stdout.write(spec.exports(result)[args.format])
    elif args.json:
        payload = {"task": spec.id, "model": result.model, "result": result.data, "notes": result.notes}
        print(json.dumps(payload, ensure_ascii=False, indent=2))
    else:
        print(result.text)
    return 0


def _inputs(spec: Any, args: argparse.Namespace) -> dict[str, Any]:
    """What INPUT (or ``--image PHOTO``) stands for: one of the two, not both."""
    from desktop.errors import UserError

    image = getattr(args, "image", None)
    if image is not None:
        if args.input is not None:
            raise UserError("Give a text or --image PHOTO, not both.")
        return {"input_type": "Image", "text": None, "image": image}
    if args.input is None:
        raise UserError("Give a text (or - to read it from stdin), or a photo with --image PHOTO.")
    return spec.cli_inputs(sys.stdin.read() if args.input == "-" else args.input)
