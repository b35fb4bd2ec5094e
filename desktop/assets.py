"""Finds files in ``assets/``, whether running from source or from a PyInstaller bundle."""

from __future__ import annotations

import sys
from pathlib import Path


def root() -> Path:
    """The assets folder: inside the bundle (``sys._MEIPASS``) or next to the package."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "assets"
    return Path(__file__).resolve().parent.parent / "assets"


def path(name: str) -> Path:
    return root() / name


def read_text(name: str) -> str:
    try:
        return path(name).read_text(encoding="utf-8")
    except OSError:
        return ""
