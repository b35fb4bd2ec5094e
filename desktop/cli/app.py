"""``pipedesk`` / ``pipedesk app``: the desktop window, or (no display) a local server."""

from __future__ import annotations

import argparse

from desktop.cli.common import add_device


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``app`` (also what ``pipedesk`` with no command runs)."""
    app = sub.add_parser("app", help="open the desktop app (the default)")
    add_device(app)
    app.set_defaults(func=cmd_app, host="127.0.0.1", port=None)


def cmd_app(args: argparse.Namespace) -> int:
    """The desktop app: a native window when there is a display, a local server otherwise."""
    from desktop.shell import window

    return window.run_app(args)
