"""Models the user added by name: imported folders and custom Hub ids.

Stored as JSON next to the models (``<models dir>/catalog.json``) so the list
moves with the models folder. Read on demand; written atomically.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from desktop import paths


def _catalog_file() -> Path:
    from desktop.models import ModelStore

    return ModelStore().root / "catalog.json"


def load() -> dict[str, Any]:
    try:
        data = json.loads(_catalog_file().read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def save(data: dict[str, Any]) -> None:
    target = _catalog_file()
    paths.ensure(target.parent)
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2), encoding="utf-8")
    os.replace(tmp, target)


def imported_path(name: str) -> Path | None:
    """The folder of the model imported as ``name``, or None."""
    entry = load().get("imported", {}).get(name)
    if not entry:
        return None
    folder = Path(entry["path"])
    if not folder.is_absolute():
        from desktop.models import ModelStore

        folder = ModelStore().root / folder
    return folder
