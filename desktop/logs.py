"""Logging to a rotating file in the user log directory (a windowed app has no console)."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from desktop import paths

LOG_NAME = "pipedesk.log"


def log_file() -> Path:
    return paths.log_dir() / LOG_NAME


def setup(level: int = logging.INFO, console: bool = False) -> Path:
    """Send Pipedesk's logs to the rotating log file (and stderr if ``console``); return its path."""
    target = log_file()
    root = logging.getLogger()
    if any(getattr(h, "_pipedesk", False) for h in root.handlers):
        return target
    paths.ensure(target.parent)
    handler = logging.handlers.RotatingFileHandler(
        target, maxBytes=2_000_000, backupCount=3, encoding="utf-8"
    )
    handler._pipedesk = True  # type: ignore[attr-defined]
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(threadName)s %(name)s: %(message)s"))
    root.addHandler(handler)
    if console:
        stream = logging.StreamHandler()
        stream._pipedesk = True  # type: ignore[attr-defined]
        stream.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        stream.setLevel(logging.WARNING)
        root.addHandler(stream)
    root.setLevel(level)
    for noisy in ("httpx", "httpcore", "urllib3", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return target
