"""Finds files in ``assets/``, whether running from source or from a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path

#: The event the app's page sends on ``document`` once its first values are loaded: the window's
#: splash (desktop/shell/splash.py) stays over the page until then.
PAGE_READY_EVENT = "pipedesk-ready"


def root() -> Path:
    """The assets folder: inside the bundle (``sys._MEIPASS``) or next to the package."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "assets"
    return Path(__file__).resolve().parent.parent / "assets"


def path(name: str) -> Path:
    """The asset ``name`` (it may not exist)."""
    return root() / name


def read_text(name: str) -> str:
    """The text of the asset ``name``; "" when it cannot be read."""
    try:
        return path(name).read_text(encoding="utf-8")
    except OSError:
        return ""
