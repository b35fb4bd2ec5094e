"""The command line: ``pipedesk [app|serve|run|batch|models|doctor]``.

Parses arguments and dispatches to one module per command (``register(subparsers)`` adds each
command's parser); shared helpers live in :mod:`desktop.cli.common`. Heavy imports (torch,
gradio) happen inside the commands that need them, so ``pipedesk --help`` and ``doctor`` stay
quick. User errors exit with code 2 and one line on stderr.
"""

from __future__ import annotations

import argparse
import sys

from desktop import __version__
from desktop.cli.common import ensure_streams
from desktop.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    from desktop.cli import app, batch, doctor, models, run, serve
    from desktop.shell import smoke

    parser = argparse.ArgumentParser(
        prog="pipedesk",
        description="Pipedesk: Hugging Face models on your own computer, offline.",
    )
    parser.add_argument("--version", action="version", version=f"pipedesk {__version__}")
    parser.add_argument(
        "--smoke-test",
        dest="func",
        action="store_const",
        const=smoke.command,
        help="check this installation: serve with no window, run every task once offline, exit 0 if all answered",
    )
    parser.set_defaults(func=app.cmd_app, host="127.0.0.1", port=None, device=None)
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    for command in (app, serve, run, doctor, models, batch):
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    ensure_streams()
    arguments = sys.argv[1:] if argv is None else argv
    if not arguments:  # a double-click: straight to the window, no parser to build
        from desktop.cli import app

        args = argparse.Namespace(func=app.cmd_app, host="127.0.0.1", port=None, device=None)
    else:
        args = build_parser().parse_args(arguments)
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"pipedesk: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
