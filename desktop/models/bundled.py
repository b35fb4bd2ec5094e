"""Models shipped inside a packaged build (``--bundle-model``): read-only and always ready.

A build puts each chosen model in ``<bundle>/models/<owner>--<name>`` with the
files ``save_pretrained`` writes. Outside a packaged build there are none.
"""

from __future__ import annotations

import sys
from pathlib import Path

from desktop.models.ref import ModelRef


def bundle_models_dir() -> Path | None:
    """``<bundle>/models`` in a PyInstaller build, else None."""
    base = getattr(sys, "_MEIPASS", None)
    if not base:
        return None
    folder = Path(base) / "models"
    return folder if folder.is_dir() else None


def bundled_path(ref: ModelRef) -> Path | None:
    """The bundled copy of ``ref``, or None."""
    root = bundle_models_dir()
    if root is None:
        return None
    folder = root / ref.repo.replace("/", "--")
    return folder if (folder / "config.json").is_file() else None


def bundled_repos() -> list[str]:
    """The Hub ids of every model inside the build (``owner/name``), sorted; empty from source."""
    root = bundle_models_dir()
    if root is None:
        return []
    return sorted(
        folder.name.replace("--", "/", 1) for folder in root.iterdir() if (folder / "config.json").is_file()
    )
