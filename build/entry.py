"""The packaged app's entry point: PyInstaller runs this file as ``__main__``.

Order matters: ``freeze_support()`` first (a frozen app re-enters here in child
processes), then the environment (private HF_HOME, no telemetry:
``desktop.env``) before gradio, huggingface_hub or transformers is
imported. A windowed build has no console, so an error that escapes the CLI is
also written to the log file before the app exits.
"""

from __future__ import annotations

import multiprocessing
import sys


def _log_crash() -> None:
    """Write the exception being handled to the log file (only there: stderr gets it anyway)."""
    import logging

    from desktop import logs

    logs.setup()
    record = logging.getLogger("pipedesk").makeRecord(
        "pipedesk", logging.CRITICAL, __file__, 0, "Pipedesk stopped because of an unexpected error",
        (), sys.exc_info(),
    )  # fmt: skip
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.FileHandler):
            handler.handle(record)


def main() -> int:
    multiprocessing.freeze_support()
    from desktop.env import configure_environment

    configure_environment()  # also run by desktop/__init__; explicit so the order is plain here
    from desktop.cli import main as cli_main

    try:
        return cli_main()
    except Exception:
        try:
            _log_crash()
        except Exception:  # the original error matters more
            pass
        raise


if __name__ == "__main__":
    sys.exit(main())
