"""Converted copies of models: what an inference engine other than transformers (CTranslate2 for
Whisper) makes of a model the first time it runs it, kept in the models folder's ``converted``
part, moved with it, deleted with the model. Pure paths; any thread."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from desktop.models import transfers

PART = "converted"


def copy_folder(root: Path, source: Path, engine: str) -> Path:
    """Where the copy of the model in ``source`` converted for ``engine`` is kept under the models
    folder ``root``: named after the model's place (relative to ``root`` when inside it, so a moved
    folder keeps its copies) and its weights' names, sizes and times (new weights, a new copy)."""
    return Path(root) / PART / f"{engine}-{_digest(root, source)}"


def remove_copies(root: Path, source: Path) -> None:
    """Delete every converted copy of the model in ``source`` (every engine's)."""
    folder = Path(root) / PART
    if not Path(source).is_dir() or not folder.is_dir():
        return
    for copy in folder.glob(f"*-{_digest(root, source)}"):
        transfers.remove_tree(copy)


def _digest(root: Path, source: Path) -> str:
    folder, base = Path(source).resolve(), Path(root).resolve()
    place = folder.relative_to(base).as_posix() if folder.is_relative_to(base) else str(folder)
    weights = sorted(
        (p.name, p.stat().st_size, p.stat().st_mtime_ns)
        for p in folder.iterdir()
        if p.suffix in (".safetensors", ".bin") and p.is_file()
    )
    return hashlib.sha256(json.dumps([place, weights]).encode("utf-8")).hexdigest()[:16]
