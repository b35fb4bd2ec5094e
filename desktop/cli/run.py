"""``pipedesk run TASK INPUT``: one prediction, printed (plain text, or JSON with --json)."""

from __future__ import annotations

import argparse
import json
import sys

from desktop.cli.common import add_device, add_task_options, terminal_progress


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``run`` and one sub-command per task (with that task's options)."""
    from desktop.tasks import TASKS

    run = subparsers.add_parser("run", help="run one task once and print the result")
    tasks = run.add_subparsers(title="tasks", metavar="TASK", required=True)
    for spec in TASKS.values():
        task = tasks.add_parser(spec.id, help=spec.title, description=spec.description)
        task.add_argument(
            "input", metavar="INPUT", help="the text (or an image path for classify); - reads stdin"
        )
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
    from desktop.engine.runtime import Runtime
    from desktop.tasks import get

    logs.setup()
    spec = get(args.task)
    value = sys.stdin.read() if args.input == "-" else args.input
    inputs = spec.cli_inputs(value)
    options = [option.check(getattr(args, option.name), option.flag) for option in spec.options]
    runtime = Runtime(device=args.device)
    call = [*(inputs.get(name) for name in spec.inputs), args.model, *options]
    result = runtime.predict(spec, *call, progress=terminal_progress())
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
